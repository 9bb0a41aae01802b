"""The store as users run it: ``lprmeta run`` processes, killed and restarted, two of
them sharing one PostgreSQL, and ``lprmeta events`` reading what they stored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lprmeta.simulator.http import HttpPusher
from lprmeta.simulator.script import ReadFactory
from tests.tools.postgres import PgCluster

from ..conftest import free_port, lprmeta


def write_config(
    path: Path, *, http_port: int, camera: str, store: str, api_port: int | None = None
) -> Path:
    api = f'[api]\nlisten = "127.0.0.1:{api_port}"\n' if api_port else ""
    path.write_text(
        f"""
[output]
snapshot_dir = "snaps-{camera}"
stdout = false
[http]
listen = "127.0.0.1:{http_port}"
[store]
{store}
{api}
[[cameras]]
name = "{camera}"
host = "127.0.0.1"
  [cameras.http]
  path = "/lpr/{camera}"
"""
    )
    return path


async def wait_listening(port: int, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


@contextlib.asynccontextmanager
async def daemon(config: Path, cwd: Path, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await lprmeta("run", "--config", str(config), "--log-format", "json", cwd=cwd)
    try:
        await wait_listening(port)
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.communicate(), 20)


def events_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lprmeta", "events", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
async def test_every_push_answered_200_survives_sigkill(tmp_path: Path) -> None:
    http_port = free_port()
    config = write_config(
        tmp_path / "lprmeta.toml", http_port=http_port, camera="gate", store='data_dir = "data"'
    )
    factory = ReadFactory(seed=11, picture_bytes=3000)
    answered: list[str] = []
    proc = await lprmeta("run", "--config", str(config), cwd=tmp_path)
    await wait_listening(http_port)
    async with HttpPusher(f"http://127.0.0.1:{http_port}/lpr/gate") as push:

        async def pusher() -> None:
            while True:
                try:
                    status, reply = await push.push_read(factory.next())
                except (TimeoutError, aiohttp.ClientError, OSError):
                    return
                if status == 200:
                    answered.append(reply["id"])
                    if len(answered) >= 300:
                        enough.set()

        enough = asyncio.Event()
        tasks = [asyncio.create_task(pusher()) for _ in range(8)]
        await asyncio.wait_for(enough.wait(), 60)
        proc.kill()  # SIGKILL, mid-run, pushes in flight
        await proc.wait()
        await asyncio.gather(*tasks)
    assert len(answered) >= 300
    # Restarted, it writes whatever waited in its spool; then every answered id is there.
    async with daemon(config, tmp_path, http_port):
        await asyncio.sleep(0.5)
    out = events_cli("--config", str(config), "--limit", "1000", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    stored = {json.loads(line)["id"] for line in out.stdout.splitlines()}
    missing = [i for i in answered if i not in stored]
    assert missing == [], f"{len(missing)} of {len(answered)} answered pushes not stored"


@pytest.mark.slow
async def test_two_daemons_share_one_postgresql(tmp_path: Path) -> None:
    cluster = PgCluster()
    await asyncio.to_thread(cluster.start)
    try:
        url = await asyncio.to_thread(cluster.new_database)
        ports = {"north": free_port(), "south": free_port()}
        api_port = free_port()
        configs = {
            name: write_config(
                tmp_path / f"{name}.toml",
                http_port=port,
                camera=name,
                store=f'url = "{url}"\norigin = "{name}"\ndata_dir = "data-{name}"',
                api_port=api_port if name == "north" else None,
            )
            for name, port in ports.items()
        }
        async with (
            daemon(configs["north"], tmp_path, ports["north"]),
            daemon(configs["south"], tmp_path, ports["south"]),
        ):
            await wait_listening(api_port)
            factory = ReadFactory(seed=5)
            sent: dict[str, list[str]] = {}
            for name, port in ports.items():
                async with HttpPusher(f"http://127.0.0.1:{port}/lpr/{name}") as push:
                    for i in range(3):
                        status, reply = await push.push_read(factory.next(plate=f"{name[:2]}{i}X"))
                        assert status == 200
                        sent.setdefault(name, []).append(reply["id"])
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{api_port}/api/events") as resp,
            ):
                page: dict[str, Any] = await resp.json()
            by_camera: dict[str, set[str]] = {}
            for e in page["events"]:
                by_camera.setdefault(e["camera"], set()).add(e["id"])
            assert by_camera == {name: set(ids) for name, ids in sent.items()}
        out = events_cli("--db", url, "--camera", "south", "--json", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert {json.loads(line)["id"] for line in out.stdout.splitlines()} == set(sent["south"])
    finally:
        await asyncio.to_thread(cluster.close)


async def test_lprmeta_events_prints_a_table_and_names_a_bad_filter(tmp_path: Path) -> None:
    http_port = free_port()
    config = write_config(
        tmp_path / "lprmeta.toml", http_port=http_port, camera="gate", store='data_dir = "data"'
    )
    async with (
        daemon(config, tmp_path, http_port),
        HttpPusher(f"http://127.0.0.1:{http_port}/lpr/gate") as push,
    ):
        factory = ReadFactory(seed=9)
        for plate in ("AB1234", "CD5678"):
            status, _ = await push.push_read(factory.next(plate=plate))
            assert status == 200
    out = events_cli("--config", str(config), "--plate", "a8-i234", "--since", "1h", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["received", "camera", "kind", "plate"]
    assert len(lines) == 2
    assert "AB1234" in lines[1]
    # The default store is ./lprmeta-data; this one's data_dir is "data", given in the config.
    bad = events_cli("--config", str(config), "--since", "last week", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--since" in bad.stderr
    nothing = events_cli("--db", f"sqlite:///{tmp_path}/nowhere/events.db", cwd=tmp_path)
    assert nothing.returncode == 1
    assert "no store" in nothing.stderr
