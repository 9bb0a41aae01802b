"""The MQTT sink against a real mosquitto (Debian) started by the tests, on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lprmeta.daemon import Daemon
from lprmeta.envelope import Picture, Read
from lprmeta.events import Event, Kind, Source
from lprmeta.simulator import ReadFactory, TcpCameraServer
from lprmeta.simulator.script import fake_jpeg
from lprmeta.sinks.spool import Spool

from ..conftest import ROOT, check_line, free_port, lprmeta, make_config
from .mosquitto import MOSQUITTO, Broker, make_tls, recording

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists(), reason="mosquitto is installed by scripts/test"
)


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


def car(plate: str, camera: str = "gate", **kw: Any) -> Read:
    pictures = kw.pop("pictures", ())
    event = Event(kind=Kind.PLATE, camera=camera, source=Source.HTTP, plate=plate, **kw)
    return Read(event, pictures)


def plates(payloads: list[bytes]) -> list[str]:
    return [json.loads(p)["plate"] for p in payloads]


def first_seen(items: list[str]) -> list[str]:
    """At least once: an event in flight when the connection broke may come twice."""
    return list(dict.fromkeys(items))


async def test_topics_payloads_pictures_and_availability(tmp_path: Path, broker: Broker) -> None:
    sim = TcpCameraServer()
    await sim.start()
    tcp = {"port": sim.port}
    config = make_config(
        tmp_path,
        mqtt=mqtt(broker, pictures="binary", qos=0, retain=True),
        cameras=[
            {"name": "gate", "host": "127.0.0.1", "password": "sim-password", "tcp": tcp},
            {"name": "pusher", "host": "127.0.0.1", "http": {}},
        ],
    )
    plate_jpeg = fake_jpeg(2500, seed=7)
    async with recording(broker, "site1/#") as rec:
        async with Daemon(config, stdout=io.BytesIO()) as d:
            await rec.wait(lambda: rec.on("site1/gate/status")[-1:] == [b"online"])
            assert rec.on("site1/_daemon/nvr1/status")[-1:] == [b"online"]
            # Push-only: always online (published with the others, not necessarily before
            # the TCP camera's; the first fresh-clone run of the day saw it just after).
            await rec.wait(lambda: rec.on("site1/pusher/status")[-1:] == [b"online"])
            await sim.send_read(ReadFactory(seed=3).next(plate="MQ1"))
            d.deliver(car("MQ2", camera="pusher", pictures=(Picture("plate", plate_jpeg),)))
            await rec.wait(lambda: len(rec.on("site1/gate/plate")) == 1)
            await rec.wait(lambda: len(rec.on("site1/pusher/plate")) == 1)
            await sim.close()  # the camera goes away: its status says so
            await rec.wait(lambda: rec.on("site1/gate/status")[-1:] == [b"offline"])
            assert rec.on("site1/_daemon/nvr1/status")[-1:] == [b"online"]
        # A clean stop: the daemon and its cameras go offline.
        await rec.wait(lambda: rec.on("site1/_daemon/nvr1/status")[-1:] == [b"offline"])
        assert rec.on("site1/pusher/status")[-1:] == [b"offline"]

    gate = check_line(rec.on("site1/gate/plate")[0])
    assert gate["plate"] == "MQ1" and gate["camera"] == "gate" and gate["source"] == "tcp"
    pusher = check_line(rec.on("site1/pusher/plate")[0])
    assert pusher["plate"] == "MQ2"
    # pictures = "binary": the JPEG itself on <prefix>/<camera>/<kind>/<role>, before the event.
    assert rec.on("site1/pusher/plate/plate") == [plate_jpeg]
    assert pusher["images"][0]["sha256"] == hashlib.sha256(plate_jpeg).hexdigest()
    order = [m.topic for m in rec.messages if m.topic.startswith("site1/pusher/plate")]
    assert order == ["site1/pusher/plate/plate", "site1/pusher/plate"]
    # qos = 0 as configured for events and pictures; availability always QoS 1.
    assert {m.qos for m in rec.messages if "/plate" in m.topic} == {0}
    assert {m.qos for m in rec.messages if m.topic.endswith("/status")} == {1}
    gate_pictures = {m.topic for m in rec.messages if m.topic.startswith("site1/gate/plate/")}
    assert gate_pictures == {f"site1/gate/plate/{i['role']}" for i in gate["images"]}

    # retain = true: a newcomer gets the last event and the statuses at once.
    async with recording(broker, "site1/#", client_id="late") as late:
        await late.wait(lambda: len(late.on("site1/pusher/plate")) == 1)
        assert all(m.retain for m in late.messages)
        await late.wait(lambda: late.on("site1/_daemon/nvr1/status") == [b"offline"])


async def test_broker_restart_loses_nothing_within_the_buffer(
    tmp_path: Path, broker: Broker
) -> None:
    config = make_config(tmp_path, bus={"dedup_window": 0}, mqtt=mqtt(broker, buffer=300))
    async with (
        recording(broker, "site1/gate/plate") as rec,
        Daemon(config, stdout=io.BytesIO()) as d,
    ):
        for i in range(100):
            d.deliver(car(f"A{i}"))
        await rec.wait(lambda: len(rec.messages) >= 100)
        broker.stop()
        await asyncio.sleep(0.3)  # the sink notices
        for i in range(350):  # 300 fit the buffer; 50 do not
            d.deliver(car(f"B{i}"))
            if i % 50 == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        broker.start()  # same port, same persistence: the recorder's session is kept
        await rec.wait(lambda: d.stats.total("mqtt_sent:mqtt") >= 400)
        for i in range(100):
            d.deliver(car(f"C{i}"))
        await rec.wait(lambda: len(set(plates(rec.on("site1/gate/plate")))) >= 500)
        stats = d.stats
    got = first_seen(plates(rec.on("site1/gate/plate")))
    want = [f"A{i}" for i in range(100)] + [f"B{i}" for i in range(300)]
    want += [f"C{i}" for i in range(100)]
    assert got == want  # in order, nothing lost that fit
    assert stats.total("dropped:mqtt") == 50  # and what did not fit was counted
    assert stats.total("mqtt_sent:mqtt") >= 500
    assert stats.total("mqtt_disconnects:mqtt") >= 1


async def test_the_spool_keeps_events_across_a_daemon_restart(
    tmp_path: Path, broker: Broker
) -> None:
    spool = tmp_path / "spool" / "mqtt.spool"
    broker.stop()  # away from the start
    config = make_config(
        tmp_path, bus={"dedup_window": 0}, mqtt=mqtt(broker, spool=str(spool), buffer=1000)
    )
    async with Daemon(config, stdout=io.BytesIO(), shutdown_timeout=1.0) as d:
        for i in range(40):
            d.deliver(car(f"S{i}"))
        await asyncio.sleep(0.3)
    with Spool(spool, 1000) as kept:
        assert kept.waiting == 40
    broker.start()
    async with (
        recording(broker, "site1/gate/plate") as rec,
        Daemon(config, stdout=io.BytesIO()) as d,
    ):
        d.deliver(car("AFTER"))
        await rec.wait(lambda: len(rec.messages) >= 41)
    assert first_seen(plates(rec.on("site1/gate/plate"))) == [f"S{i}" for i in range(40)] + [
        "AFTER"
    ]
    with Spool(spool, 1000) as kept:
        assert kept.waiting == 0
    assert spool.stat().st_size == 0  # emptied once all was sent


def test_spool_cuts_a_torn_record_and_resumes_at_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "s.spool"
    s = Spool(path, limit=3)
    assert s.append(b'{"n":1}\n') and s.append(b'{"n":2}\n') and s.append(b'{"n":3}\n')
    assert not s.append(b'{"n":4}\n')  # the limit
    assert s.peek() == b'{"n":1}\n'
    s.ack()
    s.close()
    with path.open("ab") as f:
        f.write(b'{"n":5')  # a write cut short by a crash
    s = Spool(path, limit=3)
    assert (s.torn, s.waiting) == (6, 2)
    assert s.peek() == b'{"n":2}\n'
    s.ack()
    assert s.peek() == b'{"n":3}\n'
    s.ack()
    assert s.peek() is None and path.stat().st_size == 0
    s.close()


def test_spool_cuts_off_what_was_sent_once_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lprmeta.sinks import spool as spool_module

    monkeypatch.setattr(spool_module, "COMPACT_AT", 20)
    path = tmp_path / "s.spool"
    s = Spool(path, limit=100)
    for n in range(5):
        s.append(b'{"n":%d}\n' % n)  # 8 bytes each
    for _ in range(3):
        s.ack()  # past 20 bytes sent: compacted
    assert path.read_bytes() == b'{"n":3}\n{"n":4}\n'
    assert s.waiting == 2 and s.peek() == b'{"n":3}\n'
    s.append(b'{"n":5}\n')
    s.close()
    with Spool(path, limit=100) as again:  # the offset file agrees with the new file
        got = []
        while (r := again.peek()) is not None:
            got.append(r)
            again.ack()
    assert got == [b'{"n":3}\n', b'{"n":4}\n', b'{"n":5}\n']


async def test_tls_credentials_and_failover(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "broker"
    workdir.mkdir()
    ca, cert, key = make_tls(workdir)
    secure = Broker(workdir, users={"lpr": "broker-pass-93"}, tls=(ca, cert, key))
    secure.start()
    try:
        dead = free_port()  # the first broker of the "cluster" is down
        base = {
            "host": "127.0.0.1",
            "port": dead,
            "failover": [f"127.0.0.1:{secure.port}"],
            "tls": True,
            "ca_file": str(ca),
            "username": "lpr",
            "client_id": "nvr-tls",
            "backoff_initial": 0.05,
            "backoff_max": 0.2,
        }
        metrics_port = free_port()
        config = make_config(
            tmp_path,
            metrics={"listen": f"127.0.0.1:{metrics_port}"},
            mqtt={**base, "password": "broker-pass-93"},
        )
        async with Daemon(config, stdout=io.BytesIO()) as d:
            d.deliver(car("TLS1"))
            await _wait(lambda: d.stats.total("mqtt_sent:mqtt") == 1)
            assert d.health.sinks["mqtt"].state == "up"
            async with aiohttp.ClientSession() as http:
                base_url = f"http://127.0.0.1:{metrics_port}"
                async with http.get(f"{base_url}/healthz") as resp:
                    assert (await resp.json())["sinks"]["mqtt"]["state"] == "up"
                async with http.get(f"{base_url}/metrics") as resp:
                    text = await resp.text()
            connected = {
                s.labels["sink"]: s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "lprmeta_sink_connected"
            }
            assert connected == {"mqtt": 1.0}

        wrong = make_config(tmp_path, mqtt={**base, "password": "nope-wrong-77"})
        async with Daemon(wrong, stdout=io.BytesIO(), shutdown_timeout=0.5) as d:
            d.deliver(car("TLS2"))
            await asyncio.sleep(1.0)
            assert d.stats.total("mqtt_sent:mqtt") == 0
            assert d.health.sinks["mqtt"].state == "down"

        (tmp_path / "other").mkdir()
        other_ca, _, _ = make_tls(tmp_path / "other")  # a CA that did not sign the broker's
        untrusted = make_config(
            tmp_path, mqtt={**base, "password": "broker-pass-93", "ca_file": str(other_ca)}
        )
        async with Daemon(untrusted, stdout=io.BytesIO(), shutdown_timeout=0.5) as d:
            await asyncio.sleep(1.0)
            assert d.stats.total("mqtt_sent:mqtt") == 0
            assert d.health.sinks["mqtt"].state == "down"
    finally:
        secure.stop()
    err = capfd.readouterr().err
    assert "Not authorized" in err, err  # mosquitto says why
    assert "certificate verify failed" in err, err
    assert "broker-pass-93" not in err and "nope-wrong-77" not in err


async def _wait(cond: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_two_daemons_share_a_broker_and_a_killed_one_goes_offline(
    tmp_path: Path, broker: Broker
) -> None:
    """Each daemon runs as `lprmeta run` with its own cameras and client_id; SIGKILL on one
    makes the broker publish its last will."""
    procs = []
    ports = []
    for name in ("east", "west"):
        port = free_port()
        ports.append(port)
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            f'[output]\nsnapshot_dir = "{tmp_path / name}"\n'
            f'[store]\ndata_dir = "{tmp_path / name}-data"\n'
            f'[http]\nlisten = "127.0.0.1:{port}"\n'
            f'[[cameras]]\nname = "{name}-gate"\nhost = "127.0.0.1"\n[cameras.http]\n'
            f'[mqtt]\nport = {broker.port}\nprefix = "site1"\nclient_id = "nvr-{name}"\n'
            f"backoff_initial = 0.05\n"
        )
        procs.append(
            await lprmeta(
                "run",
                "--config",
                str(cfg),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        async with recording(broker, "site1/#") as rec:
            for name in ("east", "west"):
                topic = f"site1/_daemon/nvr-{name}/status"
                await rec.wait(lambda t=topic: rec.on(t)[-1:] == [b"online"])  # type: ignore[misc]
            async with aiohttp.ClientSession() as s:
                for name, port in zip(("east", "west"), ports, strict=True):
                    url = f"http://127.0.0.1:{port}/lpr/{name}-gate"
                    async with s.post(url, json={"plate": f"{name.upper()}1"}) as resp:
                        assert resp.status == 200
            await rec.wait(lambda: len(rec.on("site1/east-gate/plate")) == 1)
            await rec.wait(lambda: len(rec.on("site1/west-gate/plate")) == 1)
            assert plates(rec.on("site1/west-gate/plate")) == ["WEST1"]
            procs[0].send_signal(signal.SIGKILL)
            await asyncio.wait_for(procs[0].wait(), 10)
            await rec.wait(lambda: rec.on("site1/_daemon/nvr-east/status")[-1:] == [b"offline"])
            assert rec.on("site1/_daemon/nvr-west/status")[-1:] == [b"online"]
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
                await asyncio.wait_for(p.wait(), 10)


def test_a_spool_that_cannot_be_opened_stops_the_start(tmp_path: Path) -> None:
    from lprmeta.errors import ConfigError

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = make_config(tmp_path, mqtt={"spool": str(blocker / "mqtt.spool")})

    async def start() -> None:
        async with Daemon(config, stdout=io.BytesIO()):
            pass

    with pytest.raises(ConfigError, match=r"mqtt.spool: cannot open"):
        asyncio.run(start())


def test_spool_skips_a_damaged_over_long_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lprmeta.sinks import spool as spool_module

    monkeypatch.setattr(spool_module, "MAX_RECORD", 16)
    path = tmp_path / "s.spool"
    path.write_bytes(b'{"n":1}\n' + b"x" * 100 + b"\n" + b'{"n":2}\n')
    with Spool(path, limit=100) as s:
        assert s.peek() == b'{"n":1}\n'
        s.ack()
        assert s.peek() == b'{"n":2}\n'  # the 101-byte line passed over
        assert s.waiting == 1


def test_spool_bounds_bytes_and_takes_batches(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.spool", limit=100, limit_bytes=20)
    assert s.append(b'{"n":1}\n') and s.append(b'{"n":2}\n')  # 16 bytes waiting
    assert not s.append(b'{"n":3}\n')  # 24 > 20: refused, whatever the count
    assert s.peek_many(5) == [b'{"n":1}\n', b'{"n":2}\n']
    s.ack_many([b'{"n":1}\n'])
    assert s.waiting == 1
    assert s.append(b'{"n":3}\n')  # room again once acknowledged
    assert s.peek_many(5) == [b'{"n":2}\n', b'{"n":3}\n']
    s.ack_many(s.peek_many(5))
    assert s.waiting == 0 and s.peek() is None
    s.close()


async def test_a_stalled_spool_disk_never_holds_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every spool write (and read) is on the spool's own thread: with each append
    taking 300 ms, the loop still answers within a few ms, and nothing is lost."""
    from lprmeta.bus import Bus
    from lprmeta.config import parse_config
    from lprmeta.sinks import spool as spool_module
    from lprmeta.sinks.mqtt import MqttSink

    slow_append = spool_module.Spool.append

    def stalled(self: Spool, record: bytes) -> bool:
        import time

        time.sleep(0.3)
        return slow_append(self, record)

    monkeypatch.setattr(spool_module.Spool, "append", stalled)
    closed_port = free_port()  # no broker: everything waits in the spool
    cfg = parse_config(
        {"mqtt": {"port": closed_port, "spool": str(tmp_path / "mqtt.spool"), "buffer": 100}}
    ).mqtt
    assert cfg is not None
    bus = Bus(dedup_window=0)
    sink = MqttSink(cfg, cameras=["gate"])
    task = asyncio.create_task(sink.run(bus.subscribe("mqtt", maxsize=100)))
    loop = asyncio.get_running_loop()
    worst = 0.0
    for i in range(8):
        bus.publish(Event(kind=Kind.PLATE, camera="gate", source=Source.TCP, plate=f"ST{i:04d}"))
        for _ in range(10):
            t0 = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - t0 - 0.01)
    async with asyncio.timeout(10):
        while sink._spool is None or sink._spool.waiting < 8:  # noqa: ASYNC110  # polled
            await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert worst < 0.15, f"the loop was held {worst * 1000:.0f} ms"
    with Spool(tmp_path / "mqtt.spool", 100) as kept:
        assert kept.waiting == 8
