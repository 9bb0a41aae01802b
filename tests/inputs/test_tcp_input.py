"""The TCP input against the simulated camera, over real loopback sockets."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from lprmeta.bus import Subscription
from lprmeta.daemon import Daemon
from lprmeta.events import Event
from lprmeta.protocol.tcp import (
    COMM_ATTRIBUTES_POST,
    COMM_COUNTING_POST,
    COMM_LIST_EVENT_POST,
    COMM_PARKING_POST,
    COMM_VIOLATION_POST,
    encode_packet,
)
from lprmeta.simulator import ReadFactory, TcpCameraServer, fake_jpeg
from lprmeta.simulator.script import counting_post, list_post, parking_post

from ..conftest import FIXTURES, check_event, make_config


def camera(name: str, port: int, **tcp: Any) -> dict[str, Any]:
    return {
        "name": name,
        "host": "127.0.0.1",
        "password": "sim-password",
        "tcp": {"port": port, "backoff_initial": 0.05, "backoff_max": 0.2, **tcp},
    }


@pytest.fixture
async def sim() -> AsyncIterator[TcpCameraServer]:
    server = TcpCameraServer()
    await server.start()
    yield server
    await server.close()


async def next_event(sub: Subscription, timeout: float = 5.0) -> Event:
    ev = await asyncio.wait_for(sub.get(), timeout)
    assert ev is not None
    check_event(ev)
    return ev


def sha(path: str | None) -> str:
    assert path is not None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


async def test_reads_and_posts_arrive_with_their_pictures(
    tmp_path: Path, sim: TcpCameraServer
) -> None:
    config = make_config(tmp_path, bus={"dedup_window": 0}, cameras=[camera("gate-1", sim.port)])
    factory = ReadFactory(seed=3)
    async with Daemon(config, stdout=io.BytesIO()) as d:
        sub = d.events()
        await sim.wait_for_clients()
        read = factory.next(plate="부산02가1234")
        assert await sim.send_read(read) == 1
        ev = await next_event(sub)
        assert ev.plate == "부산02가1234" and ev.source.value == "tcp" and ev.camera == "gate-1"
        assert [i.role for i in ev.images] == ["plate", "full"]
        assert {sha(i.path) for i in ev.images} == read.picture_hashes()
        assert {i.sha256 for i in ev.images} == read.picture_hashes()
        assert ev.time == datetime.fromtimestamp(int(read.time.timestamp() * 1000) / 1000, UTC)

        big = factory.next()
        big = type(big)(
            **{
                **{f: getattr(big, f) for f in big.__dataclass_fields__},
                "full_jpeg": fake_jpeg(2 * 1024 * 1024, seed=9),
            }
        )
        await sim.send_read(big)
        ev = await next_event(sub)
        full = next(i for i in ev.images if i.role == "full")
        assert (
            full.bytes == 2 * 1024 * 1024
            and sha(full.path) == hashlib.sha256(big.full_jpeg).hexdigest()
        )

        posts = [
            (COMM_PARKING_POST, parking_post(read), "parking"),
            (COMM_COUNTING_POST, counting_post(read.time, cars=4), "counting"),
            (COMM_LIST_EVENT_POST, list_post(read), "list"),
            (COMM_ATTRIBUTES_POST, list_post(read, "Attributes Event"), "attributes"),
            (COMM_VIOLATION_POST, list_post(read, "Violation Event"), "violation"),
        ]
        for command, body, kind in posts:
            assert await sim.send_post(command, body) == 1
            ev = await next_event(sub)
            assert ev.kind.value == kind
            assert ev.images and all(i.path and Path(i.path).is_file() for i in ev.images)
        await sim.send_packet(encode_packet(0x8899, b'{"hello": 1}'))
        ev = await next_event(sub)
        assert ev.kind.value == "event" and ev.raw == {"hello": 1}


async def test_register_list_limits_posts(tmp_path: Path, sim: TcpCameraServer) -> None:
    config = make_config(tmp_path, cameras=[camera("c", sim.port, register=["counting"])])
    async with Daemon(config, stdout=io.BytesIO()) as d:
        sub = d.events()
        await sim.wait_for_clients()
        (client,) = sim.clients
        assert not client.register_all and client.registered == {"vehiclecount"}
        read = ReadFactory().next()
        assert await sim.send_post(COMM_PARKING_POST, parking_post(read)) == 0  # not registered
        assert await sim.send_post(COMM_COUNTING_POST, counting_post(read.time)) == 1
        assert (await next_event(sub)).kind.value == "counting"


async def test_rejected_login_is_logged_once_and_retried_slowly(
    tmp_path: Path, sim: TcpCameraServer
) -> None:
    cam = camera("gate-1", sim.port, login_retry=60)
    cam["password"] = "wrong-password-xyz"
    config = make_config(tmp_path, cameras=[cam])
    with capture_logs() as logs:
        async with Daemon(config, stdout=io.BytesIO()) as d:
            await asyncio.sleep(1.0)
    assert sim.rejected_logins == 1  # no tight loop: next try only after login_retry
    assert d.stats.get("login_rejected", "gate-1") == 1
    errors = [r for r in logs if r.get("log_level") == "error"]
    assert len(errors) == 1
    assert errors[0]["camera"] == "gate-1" and errors[0]["result"] == "401"
    assert "wrong-password-xyz" not in json.dumps(logs, default=str)


async def test_drop_mid_packet_emits_no_half_event_and_reconnects(
    tmp_path: Path, sim: TcpCameraServer
) -> None:
    config = make_config(tmp_path, bus={"dedup_window": 0}, cameras=[camera("c", sim.port)])
    factory = ReadFactory(seed=5, picture_bytes=50_000)
    async with Daemon(config, stdout=io.BytesIO()) as d:
        sub = d.events()
        await sim.wait_for_clients()
        sim.faults.cut_next_send_at = 20_000
        await sim.send_read(factory.next(plate="HALF01"))
        await sim.wait_for_clients()  # the input reconnected
        await sim.send_read(factory.next(plate="WHOLE02"))
        ev = await next_event(sub)
        assert ev.plate == "WHOLE02"
        assert sub.get_nowait() is None
        assert d.stats.get("partial_packets", "c") == 1
        assert d.stats.total("emitted") == 1


async def test_idle_camera_is_reconnected(tmp_path: Path, sim: TcpCameraServer) -> None:
    config = make_config(tmp_path, cameras=[camera("c", sim.port, idle_timeout=0.3)])
    async with Daemon(config, stdout=io.BytesIO()) as d:
        await sim.wait_for_clients()
        await asyncio.sleep(1.2)
        assert d.stats.get("idle_timeouts", "c") >= 2
        assert sim.logins >= 3


async def test_junk_and_bad_packets_are_counted_and_survived(
    tmp_path: Path, sim: TcpCameraServer
) -> None:
    config = make_config(tmp_path, cameras=[camera("c", sim.port)])
    async with Daemon(config, stdout=io.BytesIO()) as d:
        sub = d.events()
        await sim.wait_for_clients()
        await sim.send_packet(b"garbage-bytes")
        await sim.send_packet(encode_packet(0x8802, b"{not json"))
        await sim.send_packet(encode_packet(0x8801, b"\x11\xff\x00\x00\x00\x00\x00\x00"))
        await sim.send_packet((FIXTURES / "tcp" / "recog_guide_example.bin").read_bytes())
        ev = await next_event(sub)
        assert ev.plate == "AB1234"
        assert d.stats.get("junk_bytes", "c") == len(b"garbage-bytes")
        assert d.stats.get("bad_packets", "c") == 2
        assert len(sim.clients) == 1  # still the same connection


async def test_one_broken_camera_never_affects_another(tmp_path: Path) -> None:
    good, bad = TcpCameraServer(), TcpCameraServer()
    await good.start()
    await bad.start()
    try:
        config = make_config(
            tmp_path,
            bus={"dedup_window": 0},
            cameras=[camera("good", good.port), camera("bad", bad.port, max_packet=4096)],
        )
        factory = ReadFactory(seed=8)
        async with Daemon(config, stdout=io.BytesIO()) as d:
            sub = d.events()
            await good.wait_for_clients()
            await bad.wait_for_clients()
            # An oversize packet: the bad camera's stream is dropped and re-made.
            await bad.send_packet(b"\xcc\xff\x01\x88" + (10**9).to_bytes(4, "little"))
            for i in range(5):
                await good.send_read(factory.next(plate=f"GOOD{i}"))
            plates = [(await next_event(sub)).plate for _ in range(5)]
            assert plates == [f"GOOD{i}" for i in range(5)]
            assert d.stats.get("oversize_packets", "bad") == 1
            await bad.wait_for_clients()
    finally:
        await good.close()
        await bad.close()


async def test_never_answering_login_times_out(tmp_path: Path, sim: TcpCameraServer) -> None:
    sim.faults.never_answer_login = True
    config = make_config(tmp_path, cameras=[camera("c", sim.port, connect_timeout=0.2)])
    with capture_logs() as logs:
        async with Daemon(config, stdout=io.BytesIO()) as d:
            await asyncio.sleep(0.8)
    assert d.stats.get("reconnects", "c") >= 2
    assert any("no login reply" in str(r.get("reason")) for r in logs)
