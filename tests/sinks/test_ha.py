"""Home Assistant MQTT discovery against a real mosquitto: the exact configs, the event
entity firing on every read, the picture, availability, and removed cameras cleared."""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lprmeta.daemon import Daemon
from lprmeta.envelope import Picture, Read
from lprmeta.events import Event, Kind, Source
from lprmeta.simulator.script import fake_jpeg
from lprmeta.sinks.ha import EVENT_TYPES, safe_id

from ..conftest import free_port, lprmeta, make_config
from .mosquitto import MOSQUITTO, Broker, recording

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists(), reason="mosquitto is installed by scripts/test"
)

# What Home Assistant requires and allows in a discovery config, per platform, from its
# documentation: home-assistant.io, integrations/<platform>.mqtt, "Configuration
# variables" (event: 2023.8+, image: 2023.7+, sensor, binary_sensor), and
# integrations/mqtt "MQTT Discovery" (origin, device). Keys are written unabbreviated.
COMMON = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "device",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "object_id",
    "origin",
    "payload_available",
    "payload_not_available",
    "qos",
    "unique_id",
}
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {  # platform: (required, allowed)
    "event": ({"state_topic", "event_types"}, COMMON | {"device_class", "value_template"}),
    "sensor": (
        {"state_topic"},
        COMMON
        | {
            "device_class",
            "expire_after",
            "force_update",
            "last_reset_value_template",
            "options",
            "suggested_display_precision",
            "state_class",
            "unit_of_measurement",
            "value_template",
        },
    ),
    "image": (
        set(),  # image_topic or url_topic, exclusively (checked below)
        COMMON | {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
    ),
    "binary_sensor": (
        {"state_topic"},
        COMMON
        | {
            "device_class",
            "expire_after",
            "force_update",
            "off_delay",
            "payload_off",
            "payload_on",
            "value_template",
        },
    ),
}
DEVICE_KEYS = {
    "configuration_url",
    "connections",
    "hw_version",
    "identifiers",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "suggested_area",
    "sw_version",
    "via_device",
}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
TOPIC = re.compile(r"^homeassistant/(\w+)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$")


def mqtt(broker: Broker, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": broker.port,
        "prefix": "site1",
        "client_id": "nvr1",
        "backoff_initial": 0.05,
        "backoff_max": 0.3,
        **extra,
    }


def cameras(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "host": "127.0.0.1", "http": {}} for n in names]


def car(plate: str, camera: str, picture: bytes | None = None, **kw: Any) -> Read:
    event = Event(kind=Kind.PLATE, camera=camera, source=Source.HTTP, plate=plate, **kw)
    return Read(event, (Picture("plate", picture),) if picture else ())


def check_config(topic: str, body: dict[str, Any]) -> str:
    m = TOPIC.match(topic)
    assert m, topic
    platform = m[1]
    required, allowed = PLATFORMS[platform]
    assert required <= body.keys(), (topic, required - body.keys())
    assert body.keys() <= allowed | required, (topic, body.keys() - allowed - required)
    if platform == "image":
        assert ("image_topic" in body) != ("url_topic" in body)
    if "state_class" in body:
        assert body["state_class"] in STATE_CLASSES
    assert body["device"].keys() <= DEVICE_KEYS
    assert body["device"]["identifiers"]
    assert body["origin"].keys() <= ORIGIN_KEYS
    if "availability" in body:
        assert all(a.keys() == {"topic"} for a in body["availability"])
    return platform


async def test_discovery_configs_follow_the_documentation(tmp_path: Path, broker: Broker) -> None:
    config = make_config(tmp_path, mqtt=mqtt(broker), cameras=cameras("gate", "exit.lane"))
    async with recording(broker, "homeassistant/#") as rec, Daemon(config, stdout=io.BytesIO()):
        await rec.wait(lambda: len({m.topic for m in rec.messages}) >= 13)
        await asyncio.sleep(0.3)
    configs = {m.topic: json.loads(m.payload) for m in rec.messages if m.payload}
    platforms = [check_config(t, b) for t, b in configs.items()]
    # A daemon device, and per camera: event, 3 sensors, image, one connectivity sensor.
    assert sorted(platforms) == sorted(
        ["binary_sensor"] + ["event", "sensor", "sensor", "sensor", "image", "binary_sensor"] * 2
    )
    unique = [b["unique_id"] for b in configs.values()]
    assert len(set(unique)) == len(unique)
    assert all(u.startswith("nvr1_") for u in unique)
    exit_id = safe_id("exit.lane")
    assert exit_id != "exit.lane"
    assert exit_id == safe_id("exit.lane")  # stable
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", exit_id)
    event = configs[f"homeassistant/event/nvr1/{exit_id}_read/config"]
    assert event["event_types"] == list(EVENT_TYPES)
    assert {"plate", "plate_listed", "parking", "counting"} <= set(event["event_types"])
    assert event["availability_mode"] == "all"
    assert [a["topic"] for a in event["availability"]] == [
        "site1/_daemon/nvr1/status",
        "site1/exit.lane/status",
    ]
    assert event["device"]["via_device"] == "nvr1"
    assert event["device"]["name"] == "exit.lane"


async def test_every_read_fires_and_the_picture_is_the_saved_jpeg(
    tmp_path: Path, broker: Broker
) -> None:
    config = make_config(
        tmp_path,
        mqtt=mqtt(broker),
        cameras=cameras("gate"),
        lists=[{"name": "residents", "plates": ["AB1234"]}],
        bus={"dedup_window": 2.0},
    )
    jpeg = fake_jpeg(3000, seed=4)
    async with (
        recording(broker, "site1/gate/ha/#") as rec,
        Daemon(config, stdout=io.BytesIO()) as d,
    ):
        if True:
            d.deliver(car("AB1234", "gate", jpeg, confidence=0.93))
            await rec.wait(lambda: len(rec.on("site1/gate/ha/event")) == 1)
            # A resident leaves and comes back: the same plate, 10 s later, fires again.
            await asyncio.sleep(10)
            d.deliver(car("AB1234", "gate", jpeg))
            d.deliver(car("ZZ9999", "gate"))
            await rec.wait(lambda: len(rec.on("site1/gate/ha/event")) == 3)
    fired = [json.loads(p) for p in rec.on("site1/gate/ha/event")]
    assert [f["event_type"] for f in fired] == ["plate_listed", "plate_listed", "plate"]
    assert fired[0]["plate"] == "AB1234"
    assert fired[0]["lists"] == ["residents"]
    assert fired[0]["confidence"] == 0.93
    assert rec.on("site1/gate/ha/picture")[0] == jpeg
    # The last-plate sensor: one message, its state picked out by the value template.
    assert json.loads(rec.on("site1/gate/ha/last_plate")[-1])["plate"] == "ZZ9999"
    assert json.loads(rec.on("site1/gate/ha/last_plate")[0])["confidence"] == 0.93
    assert json.loads(rec.on("site1/gate/ha/today")[-1]) == {"reads": 3, "pictures_missing": 0}
    assert rec.on("site1/gate/ha/connected/http")  # the transport's state is published


async def test_a_removed_camera_leaves_no_ghosts(tmp_path: Path, broker: Broker) -> None:
    before = make_config(tmp_path, mqtt=mqtt(broker), cameras=cameras("gate", "old"))
    async with Daemon(before, stdout=io.BytesIO()):
        await asyncio.sleep(0.5)
    after = make_config(tmp_path, mqtt=mqtt(broker), cameras=cameras("gate"))
    async with Daemon(after, stdout=io.BytesIO()):
        await asyncio.sleep(2.5)
    # What a Home Assistant starting now would see: only the cameras configured.
    async with recording(broker, "homeassistant/#", client_id="ha-late") as late:
        await late.wait(lambda: any("gate_read" in m.topic for m in late.messages))
        await asyncio.sleep(0.5)
    retained = {m.topic for m in late.messages if m.payload}
    assert any("/gate_" in t for t in retained)
    assert not [t for t in retained if "/old_" in t]


async def test_a_killed_daemon_makes_its_entities_unavailable(
    tmp_path: Path, broker: Broker
) -> None:
    port = free_port()
    cfg = tmp_path / "lprmeta.toml"
    cfg.write_text(
        f'[output]\nsnapshot_dir = "{tmp_path / "snaps"}"\n[store]\nenabled = false\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\n'
        f'[[cameras]]\nname = "gate"\nhost = "127.0.0.1"\n[cameras.http]\n'
        f'[mqtt]\nport = {broker.port}\nprefix = "site1"\nclient_id = "nvr-k"\n'
    )
    proc = await lprmeta(
        "run",
        "--config",
        str(cfg),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with recording(broker, "#") as rec:
            topic = "homeassistant/event/nvr-k/gate_read/config"
            await rec.wait(lambda: bool(rec.on(topic)))
            availability = [a["topic"] for a in json.loads(rec.on(topic)[-1])["availability"]]
            daemon_topic = "site1/_daemon/nvr-k/status"
            assert daemon_topic in availability
            await rec.wait(lambda: rec.on(daemon_topic)[-1:] == [b"online"])
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
            await rec.wait(lambda: rec.on(daemon_topic)[-1:] == [b"offline"])  # last will
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("name", ["gate 1", "gate_1", "tor/süd", "#", "", "a+b", "x" * 64, "ÄÖÜ"])
def test_names_become_safe_stable_distinct_ids(name: str) -> None:
    sid = safe_id(name)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", sid)
    assert safe_id(name) == sid
    if name and re.fullmatch(r"[a-zA-Z0-9_-]+", name):
        assert sid == name
    assert safe_id("gate 1") != safe_id("gate_1")


async def test_a_camera_that_says_what_it_is_gets_its_device_info(
    tmp_path: Path, broker: Broker
) -> None:
    from lprmeta.simulator.camera import SimulatedCamera

    sim = SimulatedCamera(rtsp_port=0, password="sim-pass")
    async with sim:
        assert sim.rtsp is not None
        assert sim.web is not None
        cam = {
            "name": "lane",
            "host": "127.0.0.1",
            "http_port": sim.web.port,
            "password": "sim-pass",
            "rtsp": {"url": sim.rtsp.url, "pictures": False},
        }
        config = make_config(tmp_path, mqtt=mqtt(broker), cameras=[cam])
        topic = "homeassistant/event/nvr1/lane_read/config"
        async with (
            recording(broker, "homeassistant/#") as rec,
            Daemon(config, stdout=io.BytesIO()),
        ):
            await rec.wait(
                lambda: (
                    bool(rec.on(topic))
                    and "manufacturer" in json.loads(rec.on(topic)[-1])["device"]
                )
            )
    device = json.loads(rec.on(topic)[-1])["device"]
    assert device["manufacturer"].startswith("Milesight")
    assert device["model"] == "MS-C5367-X23LPC"
    assert device["via_device"] == "nvr1"
    check_config(topic, json.loads(rec.on(topic)[-1]))
    assert json.loads(rec.on("homeassistant/binary_sensor/nvr1/lane_rtsp_connected/config")[-1])


async def test_discovery_off_announces_nothing(tmp_path: Path, broker: Broker) -> None:
    config = make_config(tmp_path, mqtt=mqtt(broker, discovery=False), cameras=cameras("gate"))
    async with recording(broker, "#") as rec, Daemon(config, stdout=io.BytesIO()) as d:
        d.deliver(car("AB1234", "gate"))
        await rec.wait(lambda: bool(rec.on("site1/gate/plate")))
    assert not [m.topic for m in rec.messages if m.topic.startswith("homeassistant/")]
    assert not [m.topic for m in rec.messages if "/ha/" in m.topic]
