"""The one connection lifecycle (lprmeta.retry): exact delays with an injected sleep and
random source, the state said once per change, a rejected login waited out, what is not
expected handed on. Milliseconds, no sleeping."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from lprmeta.errors import ConnectError, LoginRejected
from lprmeta.inputs.tcp import TcpInput
from lprmeta.log import get_logger
from lprmeta.retry import Backoff, Outcome, StateLog, reconnect
from lprmeta.simulator import TcpCameraServer
from lprmeta.stats import Stats

from .conftest import make_config


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def top(lo: float, hi: float) -> float:
    return hi  # the jitter's upper end: delays are exact


async def test_delays_double_to_the_cap_and_the_state_is_said_once() -> None:
    clock = Clock()
    backoff = Backoff(1.0, 8.0, rng=top, clock=clock)
    runs = 0
    ended = 0

    async def attempt() -> bool:
        nonlocal runs
        runs += 1
        if runs <= 6:
            raise ConnectError("refused")
        return True

    def end() -> None:
        nonlocal ended
        ended += 1

    def classify(exc: Exception) -> Outcome | None:
        return Outcome("down:ConnectError", "cannot reach camera", fields={"reason": str(exc)})

    with capture_logs() as logs:
        state = StateLog(get_logger("lprmeta.test"))
        await reconnect(
            attempt, classify=classify, backoff=backoff, state=state, ended=end, sleep=clock.sleep
        )
    assert clock.slept == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert (runs, ended) == (7, 7)
    said = [r for r in logs if r["event"] == "cannot reach camera"]
    assert [r["log_level"] for r in said] == ["warning"]  # once; the repeats at debug
    assert state.repeats == 5


async def test_a_healthy_session_resets_the_backoff() -> None:
    clock = Clock()
    backoff = Backoff(1.0, 8.0, healthy_after=30.0, rng=top, clock=clock)
    plan = ["fail", "fail", "fail", "healthy", "fail", "done"]

    async def attempt() -> bool:
        step = plan.pop(0)
        if step == "healthy":
            backoff.connected()
            clock.now += 31  # up long enough
            raise ConnectError("dropped after a while")
        if step == "fail":
            raise ConnectError("refused")
        return True

    await reconnect(
        attempt,
        classify=lambda e: Outcome("down", "down"),
        backoff=backoff,
        state=StateLog(get_logger("lprmeta.test")),
        sleep=clock.sleep,
    )
    assert clock.slept == [1.0, 2.0, 4.0, 1.0, 2.0]


async def test_at_least_and_what_classify_does_not_know() -> None:
    clock = Clock()

    async def rejected() -> bool:
        raise LoginRejected("401", result="401")

    def classify(exc: Exception) -> Outcome | None:
        if isinstance(exc, LoginRejected):
            return Outcome("login-rejected", "wrong password", level="error", at_least=300.0)
        return None

    calls = 0

    async def sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        clock.slept.append(seconds)
        if calls == 2:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await reconnect(
            rejected,
            classify=classify,
            backoff=Backoff(1.0, 8.0, rng=top),
            state=StateLog(get_logger("lprmeta.test")),
            sleep=sleep,
        )
    assert clock.slept == [300.0, 300.0]  # minutes, not a tight loop

    async def bug() -> bool:
        raise KeyError("nobody expected this")

    with pytest.raises(KeyError):  # for the supervisor, which contains it
        await reconnect(
            bug,
            classify=classify,
            backoff=Backoff(1.0, 8.0),
            state=StateLog(get_logger("lprmeta.test")),
            sleep=clock.sleep,
        )


async def test_tcp_input_reconnects_with_exact_delays(tmp_path: Path) -> None:
    """The TCP input on this lifecycle, against a port nothing listens on."""
    sim = TcpCameraServer()
    await sim.start()
    port = sim.port
    await sim.close()
    config = make_config(
        tmp_path,
        cameras=[{"name": "c", "host": "127.0.0.1", "tcp": {"port": port, "backoff_max": 8.0}}],
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 6:
            raise asyncio.CancelledError

    stats = Stats()
    inp = TcpInput(config.cameras[0], deliver=lambda _r: None, stats=stats, sleep=sleep)
    inp.backoff = Backoff(1.0, 8.0, rng=top)
    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await inp.run()
    assert slept == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert stats.get("reconnects", "c") == 6
    said = [r for r in logs if r["event"] == "cannot reach camera"]
    assert [r["log_level"] for r in said] == ["warning"]  # once; the repeats at debug
    assert inp._state.repeats == 5


async def test_a_shutdown_is_not_counted_as_a_reconnect() -> None:
    """'ended' cleans up after every attempt, a cancelled one too; 'retrying' (the
    reconnect counter) runs only before a real retry."""
    ended = retried = 0
    up = asyncio.Event()

    async def attempt() -> bool:
        up.set()
        await asyncio.Event().wait()  # a healthy session, until the daemon stops
        return False

    def end() -> None:
        nonlocal ended
        ended += 1

    def retry() -> None:
        nonlocal retried
        retried += 1

    task = asyncio.create_task(
        reconnect(
            attempt,
            classify=lambda e: None,
            backoff=Backoff(1.0, 8.0),
            state=StateLog(get_logger("lprmeta.test")),
            ended=end,
            retrying=retry,
        )
    )
    await up.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (ended, retried) == (1, 0)
