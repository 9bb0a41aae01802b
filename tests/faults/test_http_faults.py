"""Fault matrix, HTTP receiver rows: hostile or broken clients never stop it serving."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from structlog.testing import capture_logs

from lprmeta.simulator.script import fake_jpeg

from ..conftest import free_port, make_config
from .conftest import running, witness


def receiver(tmp_path: Path, port: int, extra: list[dict[str, Any]]) -> Any:
    return make_config(
        tmp_path,
        bus={"dedup_window": 0},
        http={"listen": f"127.0.0.1:{port}", "read_timeout": 1.0},
        cameras=[{"name": "pusher", "host": "127.0.0.9"}, *extra],
    )


async def push(port: int, plate: str, *, picture: int = 0) -> int:
    body: dict[str, Any] = {"plate": plate}
    if picture:
        body["full_image"] = base64.b64encode(fake_jpeg(picture)).decode()
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"http://127.0.0.1:{port}/lpr/pusher", json=body) as resp,
    ):
        return resp.status


async def test_slow_loris_clients_are_cut_off_and_others_served(tmp_path: Path) -> None:
    port = free_port()
    async with witness() as w, running(receiver(tmp_path, port, [w.config()])) as events:
        slow: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(40):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /lpr/pusher HTTP/1.1\r\nHo")
            slow.append((reader, writer))

        async def dribble() -> None:  # one more header byte now and then, never finishing
            for _ in range(20):
                await asyncio.sleep(0.2)
                for _, writer in slow:
                    if not writer.is_closing():
                        writer.write(b"x")

        dribbler = asyncio.create_task(dribble())
        started = time.monotonic()
        assert await push(port, "FAST1") == 200  # not held up by 40 slow clients
        assert time.monotonic() - started < 0.5
        await w.served(events)
        # Each slow client is closed once it has failed to send a request in read_timeout.
        closed = await asyncio.gather(
            *(asyncio.wait_for(r.read(), 4) for r, _ in slow), return_exceptions=True
        )
        dribbler.cancel()
        assert all(c == b"" or isinstance(c, ConnectionError) for c in closed), closed[:3]
        assert await push(port, "FAST2") == 200
        plates = [e.plate for e in events.of("pusher")]
        assert plates == ["FAST1", "FAST2"]
        for _, writer in slow:
            writer.close()


async def test_many_concurrent_uploads(tmp_path: Path) -> None:
    port = free_port()
    async with witness() as w, running(receiver(tmp_path, port, [w.config()])) as events:
        statuses = await asyncio.gather(
            *(push(port, f"MANY{i:03d}", picture=100_000) for i in range(120))
        )
        assert statuses == [200] * 120
        await w.served(events)
        got = {e.plate for e in events.of("pusher")}
        assert got == {f"MANY{i:03d}" for i in range(120)}
        assert all(e.images[0].path for e in events.of("pusher"))


async def test_client_disconnecting_mid_body(tmp_path: Path) -> None:
    port = free_port()
    async with witness() as w:
        config = receiver(tmp_path, port, [w.config()])
        with capture_logs() as logs:
            async with running(config) as events:
                for _ in range(3):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    body = json.dumps({"plate": "NEVER"}).encode() + b" " * 200_000
                    writer.write(
                        b"POST /lpr/pusher HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                        b"\r\nContent-Length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body[:5000]
                    )
                    await writer.drain()
                    writer.transport.abort()  # gone mid-body
                await asyncio.sleep(0.3)
                await w.served(events)
                assert await push(port, "AFTER") == 200
                await events.wait_for(lambda e: e.plate == "AFTER")
                assert [e.plate for e in events.of("pusher")] == ["AFTER"]
                assert events.daemon.stats.get("http_aborted") == 3
        warnings = [r for r in logs if "disconnected before its body" in r["event"]]
        assert len(warnings) == 1  # logged once, counted always
        assert not [r for r in logs if r["log_level"] == "error"]
