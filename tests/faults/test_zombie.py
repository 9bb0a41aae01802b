"""No zombie daemon: any one input, sink or background task killed by an arbitrary
exception is restarted while the rest keeps delivering, /healthz names it while it is
down and remembers it after; when the whole cannot go on, the process exits non-zero."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from lprmeta.daemon import Daemon
from lprmeta.inputs.tcp import TcpInput
from lprmeta.sinks.hooks import HookSink
from lprmeta.sinks.jsonl import JsonlSink
from lprmeta.supervisor import Supervisor

from ..conftest import free_port, lprmeta, make_config
from .conftest import running, witness


class Boom(Exception):  # what nobody expected
    pass


def fail_once(
    monkeypatch: pytest.MonkeyPatch, cls: type, method: str, when: Callable[[Any], bool]
) -> asyncio.Event:
    """``cls.method`` raises Boom the first time ``when(self)`` holds; returns an event set
    then. The password is in the message: it must not reach the log in clear."""
    original = getattr(cls, method)
    fired = asyncio.Event()

    async def patched(self: Any, *args: Any, **kw: Any) -> Any:
        if not fired.is_set() and when(self):
            fired.set()
            await asyncio.sleep(0.05)
            raise Boom("an arbitrary failure (password witness-pw)")
        return await original(self, *args, **kw)

    monkeypatch.setattr(cls, method, patched)
    return fired


def restarts(monkeypatch: pytest.MonkeyPatch, initial: float, maximum: float) -> None:
    """The daemon's supervisor with this restart backoff."""
    made = functools.partial(Supervisor, backoff_initial=initial, backoff_max=maximum)
    monkeypatch.setattr("lprmeta.daemon.Supervisor", made)


async def healthz(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("part", "cls", "method", "when"),
    [
        ("input:tcp:faulty", TcpInput, "_session", lambda s: s.camera.name == "faulty"),
        ("sink:stdout", JsonlSink, "run", lambda s: True),
        (
            "sink:tests.sinks.sample_hooks:record_sync",
            HookSink,
            "run",
            lambda s: True,
        ),
    ],
)
async def test_one_part_dies_the_rest_delivers(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    part: str,
    cls: type,
    method: str,
    when: Callable[[Any], bool],
) -> None:
    restarts(monkeypatch, 0.6, 1.0)  # time to look at /healthz while it is down
    fired = fail_once(monkeypatch, cls, method, when)
    metrics = free_port()
    async with witness() as w, witness() as other:
        faulty = other.config()
        faulty["name"] = "faulty"
        config = make_config(
            tmp_path,
            metrics={"listen": f"127.0.0.1:{metrics}"},
            hooks=[{"target": "tests.sinks.sample_hooks:record_sync"}],
            cameras=[faulty, w.config()],
        )
        with capture_logs() as logs:
            async with running(config) as events:
                sup = events.daemon.supervisor
                await asyncio.wait_for(fired.wait(), 10)
                await asyncio.sleep(0.2)
                status, body = await healthz(metrics)
                assert status == 503 and body["status"] == "failing"
                assert any(part in p and "Boom" in p for p in body["problems"])
                await w.served(events)  # the others deliver meanwhile
                for _ in range(100):
                    if sup.parts[part].state == "running":
                        break
                    await asyncio.sleep(0.05)
                await w.served(events)
                status, body = await healthz(metrics)
                assert status == 200 and body["problems"] == []
                assert body["parts"][part]["failures"] == 1
                assert "Boom" in body["parts"][part]["last_error"]
                assert "witness-pw" not in json.dumps(body)  # a secret of the config
                assert events.daemon.stats.get(f"part_failures:{part}") == 1
    failures = [r for r in logs if r["event"].startswith("part failed unexpectedly")]
    assert len(failures) == 1 and failures[0]["part"] == part
    assert "witness-pw" not in failures[0]["error"]  # redacted (the config's secret)


async def test_background_task_failure_is_contained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def broken_stats(self: Daemon) -> None:
        raise Boom("stats task bug")

    monkeypatch.setattr(Daemon, "_log_stats", broken_stats)
    restarts(monkeypatch, 0.01, 0.05)
    async with witness() as w:
        config = make_config(tmp_path, cameras=[w.config()])
        async with running(config) as events:
            await asyncio.sleep(0.3)
            await w.served(events)
            assert events.daemon.supervisor.parts["task:stats"].failures >= 2
            # the same error again is not logged again at error level
            assert events.daemon.stats.get("part_failures:task:stats") >= 2


async def test_the_whole_failing_exits_non_zero(tmp_path: Path) -> None:
    """If the composition itself fails, run() returns 1 within seconds (systemd restarts
    it); before, it waited for a stop that never came while the process stayed up."""
    config = make_config(tmp_path, cameras=[])
    daemon = Daemon(config, stdout=io.BytesIO())
    daemon.supervisor.fatal = (Boom,)

    async def fatal(self: Daemon) -> None:
        await asyncio.sleep(0.2)
        raise Boom("the composition cannot go on")

    daemon._log_stats = fatal.__get__(daemon)  # type: ignore[method-assign]
    code = await asyncio.wait_for(daemon.run(), 10)
    assert code == 1


async def test_supervisor_backoff_is_deterministic() -> None:
    """Injected sleep and random source: restarts with doubling delays, no real waiting."""
    from lprmeta.stats import Stats

    delays: list[float] = []

    async def sleep(d: float) -> None:
        delays.append(d)

    sup = Supervisor(
        stats=Stats(), backoff_initial=1.0, backoff_max=8.0, sleep=sleep, rng=lambda a, b: b
    )
    part = sup.add("input:x", "input")
    runs = 0

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs <= 5:
            raise Boom(f"run {runs}")

    await sup.run(part, body)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert part.failures == 5 and part.state == "stopped"


async def test_sigterm_after_a_contained_failure_exits_zero(tmp_path: Path) -> None:
    """`lprmeta run` with a hostile value: still running, and a clean exit on SIGTERM."""
    from lprmeta.protocol.tcp import COMM_PARKING_POST
    from lprmeta.simulator import TcpCameraServer

    cam = TcpCameraServer(password="pw")
    await cam.start()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[output]\nsnapshot_dir = "{tmp_path / "s"}"\n[[cameras]]\nname = "h"\n'
        f'host = "127.0.0.1"\npassword = "pw"\n[cameras.tcp]\nport = {cam.port}\n'
    )
    proc = await lprmeta("run", "--config", str(cfg), cwd=tmp_path)
    try:
        await cam.wait_for_clients(1, timeout=20)
        await cam.send_post(COMM_PARKING_POST, {"Plate": "P1", "time": "0001-01-01T00:00:00+14:00"})
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert b'"P1"' in line
        await cam.send_post(COMM_PARKING_POST, {"Plate": "P2"})
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert b'"P2"' in line
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await cam.close()
