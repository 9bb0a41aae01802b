"""The loop watchdog (stalls named with what ran), systemd notification, and the RTSP
thread-to-loop hand-off that no exception may leave stuck."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from lprmeta.inputs.rtsp_session import Inbox
from lprmeta.stats import Stats
from lprmeta.watchdog import LoopWatchdog, sd_notify, systemd_watchdog_interval

from .conftest import lprmeta


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a bug looks like: blocking work on the loop


async def test_a_stall_is_logged_once_with_what_ran_and_counted() -> None:
    stats = Stats()
    pings: list[str] = []
    dog = LoopWatchdog(
        stats=stats,
        threshold=0.1,
        interval=0.02,
        notify=lambda m: pings.append(m) or True,
        notify_every=0.05,
    )
    with capture_logs() as logs:
        task = asyncio.create_task(dog.run())
        await asyncio.sleep(0.15)
        _hold_the_loop(0.4)
        await asyncio.sleep(0.2)
        task.cancel()
    stalls = [r for r in logs if r["event"].startswith("event loop stalled")]
    assert len(stalls) == 1
    assert any("_hold_the_loop" in frame for frame in stalls[0]["running"])
    ended = [r for r in logs if r["event"] == "event loop ran again"]
    assert len(ended) == 1 and ended[0]["stalled_ms"] >= 300
    assert stats.get("loop_stalls") == 1 and stats.get("loop_stall_ms") >= 300
    assert 0.3 <= dog.longest < 1.0
    assert "WATCHDOG=1" in pings and len(pings) >= 3


def test_sd_notify_sends_a_datagram(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        assert sd_notify("READY=1", env={"NOTIFY_SOCKET": path})
        assert server.recv(100) == b"READY=1"
    assert not sd_notify("READY=1", env={})
    assert systemd_watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd_watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None


async def test_lprmeta_run_talks_to_systemd(tmp_path: Path) -> None:
    """Under systemd (Type=notify, WatchdogSec): READY once up, WATCHDOG from the loop,
    STOPPING at SIGTERM; exit 0."""
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.setblocking(False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[output]\nsnapshot_dir = "{tmp_path / "s"}"\n')
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    devnull = asyncio.subprocess.DEVNULL
    proc = await lprmeta("run", "--config", str(cfg), cwd=tmp_path, env=env, stdout=devnull)
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while got.count(b"WATCHDOG=1") < 3:
                got.append(await loop.sock_recv(server, 100))
        assert got[0] == b"READY=1"
        proc.terminate()
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
            while b"STOPPING=1" not in got:
                got.append(await loop.sock_recv(server, 100))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        server.close()


async def test_a_failing_handler_cannot_leave_the_inbox_stuck() -> None:
    """A document whose handler raises used to leave the inbox's 'scheduled' flag set: no
    RTSP camera delivered again. The next documents are handled; the failure is counted."""
    loop = asyncio.get_running_loop()
    inbox = Inbox(loop, linger=0.001)
    handled: list[bytes] = []

    def handler(_session: Any, doc: bytes) -> None:
        if doc == b"bad":
            raise OverflowError("date value out of range")
        handled.append(doc)

    with capture_logs() as logs:
        for doc in (b"one", b"bad", b"two"):
            await asyncio.to_thread(inbox.put, handler, None, doc)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        for doc in (b"three", b"bad", b"four"):
            await asyncio.to_thread(inbox.put, handler, None, doc)  # type: ignore[arg-type]
            await asyncio.sleep(0.02)
    assert handled == [b"one", b"two", b"three", b"four"]
    assert inbox.failures == 2
    said = [r for r in logs if r["event"].startswith("RTSP document handler failed")]
    assert [r["log_level"] for r in said] == ["error"]  # said once, then counted (debug)


async def test_a_restarted_watchdog_watches_again() -> None:
    """The supervisor restarts a failed task: the watchdog's second run must detect stalls
    too (its first run stopped the thread on its way out)."""
    dog = LoopWatchdog(stats=Stats(), threshold=0.1, interval=0.02)
    first = asyncio.create_task(dog.run())
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    second = asyncio.create_task(dog.run())
    await asyncio.sleep(0.05)
    _hold_the_loop(0.3)
    await asyncio.sleep(0.1)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert dog.stalls == 1


async def test_a_backlog_in_the_inbox_is_handled_in_bounded_turns() -> None:
    """1,000 documents waiting: every one is handled, in order, in turns of at most
    DRAIN_BATCH, with the loop's other work (a task counting turns) in between."""
    from lprmeta.inputs.rtsp_session import DRAIN_BATCH

    loop = asyncio.get_running_loop()
    inbox = Inbox(loop, linger=0.001)
    handled: list[bytes] = []
    turns: list[int] = []

    def handler(_session: Any, doc: bytes) -> None:
        handled.append(doc)

    async def other_work() -> None:
        while len(handled) < 1000:
            turns.append(len(handled))
            await asyncio.sleep(0)

    docs = [b"%d" % i for i in range(1000)]

    def put_all() -> None:
        for doc in docs:
            inbox.put(handler, None, doc)  # type: ignore[arg-type]

    watcher = asyncio.create_task(other_work())
    await asyncio.to_thread(put_all)
    await asyncio.wait_for(watcher, 5)
    assert handled == docs
    steps = [b - a for a, b in itertools.pairwise(turns)]
    assert max(steps) <= DRAIN_BATCH
    assert len({t for t in turns if t}) >= 1000 // DRAIN_BATCH - 1
    await asyncio.sleep(0.01)
    inbox.put(handler, None, b"after")  # type: ignore[arg-type]  # the flag was let go
    await asyncio.sleep(0.01)
    assert handled[-1] == b"after"
