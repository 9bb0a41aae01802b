"""Containment: a hostile or merely odd camera, one row per attack of the reliability issue.

Each row runs a daemon with a well-behaved witness camera that must be served
throughout, and asserts what the attack's own read became (it goes out, with
the problem named) and that the daemon is still whole. The figures (witness
delay, peak RSS) are measured by ``bench/attacks.py``, not asserted here.
Attackers speak from 127.0.0.2 (loopback too) so the per-address budgets apply
to them and not to the witnesses on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web as aioweb

from lprmeta.daemon import Daemon
from lprmeta.errors import SinkError
from lprmeta.protocol.tcp import (
    COMM_PARKING_POST,
    COMM_RECOG_POST,
    Recognition,
    encode_chunk,
    encode_metadata,
    encode_packet,
)
from lprmeta.simulator import ReadFactory, TcpCameraServer
from lprmeta.simulator.rtsp import RtspCameraServer
from lprmeta.simulator.script import onvif_notification

from ..conftest import check_event, free_port, make_config
from .conftest import running, witness

ATTACKER = "127.0.0.2"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(64)) + b"\xff\xd9"


@pytest.fixture
async def hostile() -> AsyncIterator[TcpCameraServer]:
    cam = TcpCameraServer(password="hostile-pw")
    await cam.start()
    yield cam
    await cam.close()


def tcp_camera(cam: TcpCameraServer) -> dict[str, Any]:
    return {
        "name": "hostile",
        "host": "127.0.0.1",
        "password": "hostile-pw",
        "tcp": {"port": cam.port, "backoff_initial": 0.05, "backoff_max": 0.3},
    }


def pictures(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "snapshots").rglob("*") if p.is_file()]


# ----------------------------------------------------------------- one value stops everything


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"Plate": "BADTIME", "time": "0001-01-01T00:00:00+14:00"}, "time"),
        ({"Plate": "BADTIME2", "time": "9999-12-31T23:59:59-14:00"}, "time"),
        ({"Plate": "DIGITS", "Plate Color": "9" * 5000, "Length of Parking": "9" * 5000}, None),
    ],
)
async def test_tcp_post_with_a_value_out_of_range(
    hostile: TcpCameraServer, tmp_path: Path, body: dict[str, Any], field: str | None
) -> None:
    async with witness() as w:
        config = make_config(tmp_path, cameras=[tcp_camera(hostile), w.config()])
        async with running(config) as events:
            await hostile.wait_for_clients()
            await hostile.send_post(COMM_PARKING_POST, body)
            ev = await events.wait_for(lambda e: e.plate == body["Plate"])
            assert ev.time is None
            assert ev.raw == body  # the camera's value is kept as sent
            if field is not None:
                assert any(p.startswith(f"{field}:") for p in ev.details["problems"])
            await w.served(events)
            await w.served(events)
            assert events.daemon.supervisor.problems() == []
            assert events.daemon.stats.get("part_failures", "hostile") == 0


@pytest.mark.parametrize(
    ("status", "body", "ctype"),
    [(200, "<html><body>Login</body></html>", "text/html"), (404, "", "text/plain")],
)
async def test_web_port_that_is_no_onvif_service(
    tmp_path: Path, status: int, body: str, ctype: str
) -> None:
    """A camera without rtsp.url whose web port answers the ONVIF query with HTML or an
    empty 404: the RTSP input says so and retries; nothing else is touched."""

    async def answer(_r: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(status=status, text=body, content_type=ctype)

    app = aioweb.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aioweb.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with witness() as w:
            cam = {
                "name": "noonvif",
                "host": "127.0.0.1",
                "http_port": port,
                "rtsp": {"backoff_initial": 0.1, "backoff_max": 0.3},
            }
            config = make_config(tmp_path, cameras=[cam, w.config()])
            async with running(config) as events:
                d = events.daemon
                for _ in range(100):
                    if d.stats.get("reconnects", "noonvif") >= 2:
                        break
                    await asyncio.sleep(0.05)
                await w.served(events)
                assert d.stats.get("reconnects", "noonvif") >= 2
                assert d.health.transports["noonvif"]["rtsp"].state == "down"
                assert d.supervisor.problems() == []
    finally:
        await runner.cleanup()


async def test_rtsp_notification_with_a_value_out_of_range(tmp_path: Path) -> None:
    """A bad UtcTime on one RTSP camera used to leave the shared hand-off stuck: no RTSP
    camera delivered again. Now the read goes out and every RTSP camera goes on."""
    servers = [RtspCameraServer(port=free_port(), auth="none") for _ in range(2)]
    for s in servers:
        await s.start()
    try:
        cams = [
            {"name": name, "host": "127.0.0.1", "rtsp": {"url": s.url, "pictures": False}}
            for name, s in zip(("rtsphost", "rtspwit"), servers, strict=True)
        ]
        config = make_config(tmp_path, cameras=cams)
        async with running(config) as events:
            for s in servers:
                await s.wait_playing()
            when = ReadFactory(seed=3).next().time
            doc = onvif_notification(plate="RTSPBAD", when=when)
            start = doc.index(b'UtcTime="') + 9
            bad = doc[:start] + b"0001-01-01T00:00:00+14:00" + doc[doc.index(b'"', start) :]
            await servers[0].send_document(bad)
            ev = await events.wait_for(lambda e: e.plate == "RTSPBAD")
            assert ev.time is None and ev.raw["utc_time"] == "0001-01-01T00:00:00+14:00"
            for i in range(3):
                await servers[1].send_document(onvif_notification(plate=f"RTSPOK{i}", when=when))
                await events.wait_for(lambda e, i=i: e.plate == f"RTSPOK{i}")
            await servers[0].send_document(onvif_notification(plate="RTSPAGAIN", when=when))
            await events.wait_for(lambda e: e.plate == "RTSPAGAIN")
    finally:
        for s in servers:
            await s.close()


# ----------------------------------------------------------------- one request freezes all


def http_daemon(tmp_path: Path, **http: Any) -> tuple[dict[str, Any], int]:
    port = free_port()
    cfg = {"listen": f"127.0.0.1:{port}", "read_timeout": 5.0, **http}
    return cfg, port


def attacker(limit: int = 100) -> aiohttp.ClientSession:
    conn = aiohttp.TCPConnector(local_addr=(ATTACKER, 0), limit=limit, force_close=True)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60))


async def push(port: int, body: bytes, *, headers: dict[str, str] | None = None) -> Any:
    async with (
        attacker() as s,
        s.post(
            f"http://127.0.0.1:{port}/lpr/hostile",
            data=io.BytesIO(body),  # aiohttp warns on large bytes bodies (an error here)
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as r,
    ):
        return r.status, await r.json()


async def test_a_million_keys_are_parsed_off_the_loop(tmp_path: Path) -> None:
    http, port = http_daemon(tmp_path)
    body = b'{"Plate":"MANYKEYS",' + b",".join(b'"k%d":0' % i for i in range(1_000_000)) + b"}"
    async with witness() as w:
        config = make_config(tmp_path, http=http, cameras=[w.config()])
        async with running(config) as events:
            task = asyncio.create_task(push(port, body))
            while not task.done():  # the witness is served while the body is parsed
                await w.served(events)
            status, reply = await task
            assert status == 200
            assert "1000001 keys; the first 1000 were read and kept" in reply["problems"]
            ev = await events.wait_for(lambda e: e.plate == "MANYKEYS")
            assert len(ev.raw) <= 1000
            assert events.daemon.offload.used == 1
            assert events.daemon.watchdog.longest < 0.25  # no stall of the loop


async def test_a_hundred_thousand_picture_keys(tmp_path: Path) -> None:
    http, port = http_daemon(tmp_path)
    # 100,000 distinct keys that all fold to "plateimage" (case and one separator).
    seps = "_- ./+*!~#"
    keys: list[str] = []
    for mask in range(1024):
        cased = "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate("plateimage"))
        keys += [cased[:p] + sep + cased[p:] for p in range(11) for sep in seps]
    keys = keys[:100_000]
    b64 = base64.b64encode(JPEG).decode()
    body = json.dumps({"Plate": "IMGKEYS", **dict.fromkeys(keys, b64)}).encode()
    async with witness() as w:
        config = make_config(tmp_path, http=http, cameras=[w.config()])
        async with running(config) as events:
            status, reply = await push(port, body)
            assert status == 200
            ev = await events.wait_for(lambda e: e.plate == "IMGKEYS")
            assert len(ev.images) == 16
            assert len({i.path for i in ev.images}) == 16  # distinct files
            assert len(pictures(tmp_path)) == 16
            assert any("more pictures than the limit of 16" in p for p in reply["problems"])
            await w.served(events)


async def test_a_hundred_thousand_chunks(hostile: TcpCameraServer, tmp_path: Path) -> None:
    r = Recognition(plate="CHUNKS", images=())
    data = encode_chunk(b"\x11\xff\x00\x00", encode_metadata(r)) + b"".join(
        encode_chunk(b"\x22\xff\x00\x00", JPEG) for _ in range(100_000)
    )
    async with witness() as w:
        config = make_config(tmp_path, cameras=[tcp_camera(hostile), w.config()])
        async with running(config) as events:
            await hostile.wait_for_clients()
            await hostile.send_packet(encode_packet(COMM_RECOG_POST, data))
            ev = await events.wait_for(lambda e: e.plate == "CHUNKS")
            assert len(ev.images) <= 16 and len(pictures(tmp_path)) <= 16
            assert any("more than 24 chunks" in p for p in ev.details["problems"])
            await w.served(events)


# ----------------------------------------------------------------- budgets


async def trickle(port: int, stop: asyncio.Event) -> int | None:
    """A body that never finishes; returns the status the receiver answered, if any."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    writer.write(
        b"POST /lpr/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    status: int | None = None
    while not stop.is_set():
        try:
            line = await asyncio.wait_for(reader.readline(), 0.2)
        except TimeoutError:
            try:
                writer.write(b" ")
                await writer.drain()
            except OSError:
                pass  # refused and closed: its answer is read next time round
            continue
        except OSError:
            break
        if line:
            status = int(line.split()[1])
        break
    writer.close()
    return status


async def http_witness(port: int, plate: str) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"http://127.0.0.1:{port}/lpr/httpwit", json={"Plate": plate}) as r,
    ):
        assert r.status == 200
    return loop.time() - t0


async def test_slow_bodies_do_not_starve_a_camera(tmp_path: Path) -> None:
    http, port = http_daemon(tmp_path, read_timeout=30.0)
    config = make_config(tmp_path, http=http, cameras=[{"name": "httpwit", "host": "127.0.0.9"}])
    async with running(config) as events:
        stop = asyncio.Event()
        trickles = [asyncio.create_task(trickle(port, stop)) for _ in range(70)]
        await asyncio.sleep(1.0)
        turns = events.daemon.input("http").turns  # type: ignore[attr-defined]
        # 8 bodies are read at once from the trickling address; the other 62 wait their
        # turn there, holding no body bytes and no turn of anyone else.
        assert (turns.reading(ATTACKER), turns.waiting(ATTACKER)) == (8, 62)
        for i in range(5):
            took = await http_witness(port, f"HTTPWIT{i}")
            assert took < 5.0  # not read_timeout (30 s)
            await events.wait_for(lambda e, i=i: e.plate == f"HTTPWIT{i}")
        stop.set()
        await asyncio.gather(*trickles)


async def test_many_pushes_at_once_from_one_address_all_get_200(tmp_path: Path) -> None:
    """Cameras behind one NAT address pushing at once: they take turns, none is refused."""
    http, port = http_daemon(tmp_path, max_reads_per_address=4)
    config = make_config(tmp_path, http=http, cameras=[{"name": "httpwit", "host": "127.0.0.9"}])
    async with running(config) as events:
        b64 = base64.b64encode(JPEG * 1000).decode()
        bodies = [json.dumps({"Plate": f"NAT{i:02d}", "plate_image": b64}) for i in range(40)]
        async with aiohttp.ClientSession() as s:

            async def one(body: str) -> int:
                url = f"http://127.0.0.1:{port}/lpr/httpwit"
                async with s.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as r:
                    return r.status

            statuses = await asyncio.gather(*(one(b) for b in bodies))
        assert statuses == [200] * 40
        for i in range(40):
            await events.wait_for(lambda e, i=i: e.plate == f"NAT{i:02d}")


async def test_idle_connections_are_capped_per_address(tmp_path: Path) -> None:
    http, port = http_daemon(tmp_path, max_connections_per_address=20)
    config = make_config(tmp_path, http=http, cameras=[{"name": "httpwit", "host": "127.0.0.9"}])
    async with running(config) as events:
        socks = []
        for _ in range(100):
            s = socket.socket()
            s.bind((ATTACKER, 0))
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.connect(("127.0.0.1", port))
            socks.append(s)
        await asyncio.sleep(0.5)
        assert await http_witness(port, "IDLEWIT") < 5.0
        await events.wait_for(lambda e: e.plate == "IDLEWIT")
        refused = events.daemon.stats.get("http_connections_refused")
        assert refused == 80
        d = events.daemon.input("http")
        assert d.port == port
        for s in socks:
            s.close()


async def test_gzip_bodies_are_bounded_by_their_inflated_size(tmp_path: Path) -> None:
    limit = 32 * 2**20
    http, port = http_daemon(tmp_path, max_body=8 * 2**20, max_body_memory=limit)
    inner = b'{"Plate":"GZ","pad":"' + b"A" * (64 * 2**20) + b'"}'
    packed = gzip.compress(inner, 1)
    async with witness() as w:
        config = make_config(tmp_path, http=http, cameras=[w.config()])
        async with running(config) as events:
            tasks = [
                asyncio.create_task(push(port, packed, headers={"Content-Encoding": "gzip"}))
                for _ in range(16)
            ]
            await w.served(events)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            statuses = {r[0] for r in results if isinstance(r, tuple)}
            assert statuses <= {413, 503}
            reasons = {r[1]["error"] for r in results if isinstance(r, tuple)}
            assert "compressed body expands over 100-fold" in reasons  # refused after 1 MiB
            budget = events.daemon.input("http").budget  # type: ignore[attr-defined]
            assert budget.peak <= limit and budget.held == 0
            # a small gzip body is still fine
            small = gzip.compress(json.dumps({"Plate": "GZOK"}).encode())
            status, _ = await push(port, small, headers={"Content-Encoding": "gzip"})
            assert status == 200
            await events.wait_for(lambda e: e.plate == "GZOK")


async def test_a_body_that_arrived_whole_is_bounded_by_the_memory_budget_too(
    tmp_path: Path,
) -> None:
    """A body that is all there before it is looked at (every camera's on a LAN) is taken
    from the memory budget at once: with the budget held by a body still arriving, it is
    told to retry (503), not dropped; once that one is in, it is taken; all is given back."""
    limit = 300_000
    http, port = http_daemon(tmp_path, max_body=200_000, max_body_memory=limit)
    whole = json.dumps({"Plate": "WHOLE1", "pad": "A" * 150_000}).encode()
    arriving = json.dumps({"Plate": "ARRIVING1", "pad": "B" * 190_000}).encode()
    async with witness() as w:
        config = make_config(tmp_path, http=http, cameras=[w.config()])
        async with running(config) as events:
            budget = events.daemon.input("http").budget  # type: ignore[attr-defined]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /lpr/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(arriving) + arriving[:-10]
            )
            await writer.drain()
            while budget.held < len(arriving) - 10:  # noqa: ASYNC110  # polled: held so far
                await asyncio.sleep(0.01)
            status, reply = await push(port, whole)
            assert status == 503 and "bodies in memory at budget" in reply["error"]
            writer.write(arriving[-10:])
            assert b" 200 " in await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            await events.wait_for(lambda e: e.plate == "ARRIVING1")
            assert (await push(port, whole))[0] == 200
            await events.wait_for(lambda e: e.plate == "WHOLE1")
            assert budget.peak <= limit and budget.held == 0
            await w.served(events)


# ----------------------------------------------------------------- output integrity


async def test_hostile_values_over_http_are_200_with_problems(tmp_path: Path) -> None:
    http, port = http_daemon(tmp_path)
    b64 = base64.b64encode(JPEG).decode()
    other = base64.b64encode(JPEG + b"2").decode()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"Plate": "HV1", "Time": "0001-01-01T00:00:00+14:00"}, "time:"),
        ({"Plate": "HV2", "Plate Color": "9" * 5000, "Confidence": [1, 2]}, ""),
        ({"Plate": "HV3", "Resolution Width": -5, "Resolution Height": 10}, "resolution_width"),
        ({"Plate": "HV4", "plate_image": "!!not base64!!"}, "plate: picture is not valid"),
        ({"Plate": "HV5", "plate_image": b64, "Plate Image": other}, ""),
    ]
    async with witness() as w:
        config = make_config(tmp_path, http=http, cameras=[w.config()])
        async with running(config) as events:
            for body, problem in cases:
                status, reply = await push(port, json.dumps(body).encode())
                assert status == 200, reply
                if problem:
                    assert any(p.startswith(problem) for p in reply["problems"]), reply
                ev = await events.wait_for(lambda e, b=body: e.plate == b["Plate"])
                check_event(ev)
            # A number of 5,000 digits (Python's int() refuses past 4,300): json.dumps cannot
            # write one, so the body is written by hand, with a picture beside it.
            digits = b"9" * 5000
            raw_body = b'{"Plate": "HV6", "Speed": %b, "plate_image": "%b"}' % (
                digits,
                base64.b64encode(JPEG * 600),
            )
            status, reply = await push(port, raw_body)
            assert status == 200, reply
            assert any(p.startswith("speed:") for p in reply["problems"]), reply
            hv6 = await events.wait_for(lambda e: e.plate == "HV6")
            assert hv6.speed_kmh is None and hv6.raw["Speed"] == digits.decode()
            assert [i.role for i in hv6.images] == ["plate"]
            hv3 = await events.wait_for(lambda e: e.plate == "HV3")
            assert hv3.resolution is None and hv3.raw["Resolution Width"] == -5
            hv5 = await events.wait_for(lambda e: e.plate == "HV5")
            assert [i.role for i in hv5.images] == ["plate", "plate_2"]
            for img in hv5.images:  # each file matches its line's hash
                assert img.path is not None
                assert hashlib.sha256(Path(img.path).read_bytes()).hexdigest() == img.sha256
            await w.served(events)


async def test_healthz_and_metrics_while_attacked(tmp_path: Path, hostile: TcpCameraServer) -> None:
    """The attacks above leave /healthz ok: nothing had to be restarted."""
    metrics = free_port()
    async with witness() as w:
        config = make_config(
            tmp_path,
            metrics={"listen": f"127.0.0.1:{metrics}"},
            cameras=[tcp_camera(hostile), w.config()],
        )
        async with running(config) as events:
            await hostile.wait_for_clients()
            await hostile.send_post(
                COMM_PARKING_POST, {"Plate": "X1", "time": "0001-01-01T00:00:00+14:00"}
            )
            await events.wait_for(lambda e: e.plate == "X1")
            await w.served(events)
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"http://127.0.0.1:{metrics}/healthz") as r,
            ):
                body = await r.json()
            assert r.status == 200 and body["problems"] == []
            assert body["parts"]["input:tcp:hostile"]["state"] == "running"
            assert events.daemon.stats.get("parse_problems", "hostile") == 1


async def test_stalled_stdout_reader_holds_a_bounded_queue(tmp_path: Path) -> None:
    """stdout's reader stops reading; cameras keep pushing bodies with 8 MiB text fields.
    Each line's raw is cut (16 KiB a text), and the stdout queue is bounded in bytes: what
    does not fit is dropped for stdout only, counted; the other sinks still get it."""
    import os

    read_fd, write_fd = os.pipe()
    out = os.fdopen(write_fd, "wb")
    http, port = http_daemon(tmp_path)
    config = make_config(
        tmp_path,
        http=http,
        output={"snapshot_dir": str(tmp_path / "s"), "queue_bytes": 2**20},
        cameras=[{"name": "httpwit", "host": "127.0.0.9"}],
    )
    notes = {f"note{k}": "x" * 2**16 for k in range(10)}  # ~160 KiB of raw each, once cut
    try:
        async with Daemon(config, stdout=out) as d:
            other = d.bus.subscribe("other", max_bytes=64 * 2**20)  # a sink with room
            for i in range(30):
                body = json.dumps({"Plate": f"BIGN{i:02d}", **notes}).encode()
                status, reply = await push(port, body)
                assert status == 200
                assert any(p.startswith("raw: 10 texts cut") for p in reply["problems"])
            stdout_sub = next(s for s in d.bus._subs if s.name == "stdout")
            assert stdout_sub.bytes <= 2**20
            assert d.stats.total("dropped:stdout") > 0
            seen = [await other.get() for _ in range(30)]  # the other sink got every one
            assert all(e is not None and len(e.raw["note0"]) < 17_000 for e in seen)
            os.close(read_fd)  # the reader never comes back: the daemon ends, exit 1
    except* SinkError:
        pass
    finally:
        out.close()


async def test_rtsp_overlap_cache_keeps_digests_not_documents(tmp_path: Path) -> None:
    """1 MB documents at 32/s used to be held whole for the 10 s overlap window (312 MiB);
    the cache keys are 16-byte digests now, and a repeat is still recognised."""
    server = RtspCameraServer(port=free_port(), auth="none")
    await server.start()
    try:
        cam = {"name": "big", "host": "127.0.0.1", "rtsp": {"url": server.url, "pictures": False}}
        async with running(make_config(tmp_path, cameras=[cam])) as events:
            await server.wait_playing()
            when = ReadFactory(seed=5).next().time
            docs = [
                onvif_notification(plate=f"BIG{i}", when=when, speed="x" * 900_000)
                for i in range(5)
            ]
            for doc in docs:
                await server.send_document(doc)
            for i in range(5):
                await events.wait_for(lambda e, i=i: e.plate == f"BIG{i}")
            rtsp = events.daemon.input("rtsp:big")
            recent = rtsp._recent  # type: ignore[attr-defined]
            assert len(recent) == 5 and all(len(k) == 16 for k in recent)
            rtsp._on_document(next(iter(rtsp._sessions)), docs[0])  # type: ignore[attr-defined]
            assert events.daemon.stats.get("overlap_duplicates", "big") == 1
    finally:
        await server.close()


async def test_many_unknown_sender_addresses_share_one_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each unconfigured sender gets a camera label (health, counters); from thousands of
    addresses (the whole 127/8 is this machine) they share one after the first few."""
    import lprmeta.inputs.http as http_mod

    monkeypatch.setattr(http_mod, "MAX_UNKNOWN_SENDERS", 3)
    http, port = http_daemon(tmp_path)
    async with running(make_config(tmp_path, http=http, cameras=[])) as events:
        for i in range(6):
            conn = aiohttp.TCPConnector(local_addr=(f"127.0.9.{i + 1}", 0), force_close=True)
            async with (
                aiohttp.ClientSession(connector=conn) as s,
                s.post(f"http://127.0.0.1:{port}/api/x", json={"Plate": f"U{i}"}) as r,
            ):
                assert r.status == 200
        cams = [(await events.wait_for(lambda e, i=i: e.plate == f"U{i}")).camera for i in range(6)]
        assert cams[:3] == ["http-127091", "http-127092", "http-127093"]
        assert cams[3:] == ["http-other"] * 3
