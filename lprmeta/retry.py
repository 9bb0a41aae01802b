"""One connection lifecycle, for everything that connects somewhere: a camera's TCP
port and RTSP stream, the MQTT broker (STYLE.md, "one lifecycle").

Owns the loop (attempt, classify what it raised, say the change of state once,
back off with jitter, reset after a healthy period, again) and its two parts:
:class:`Backoff` and :class:`StateLog`. Does not know what an attempt does;
each input or sink gives its attempt and a ``classify`` that turns the failures
it expects into an :class:`Outcome`. What ``classify`` does not know propagates
(to the supervisor, which contains it). Sleep, clock and random source are
injectable, so a reconnect test runs in milliseconds and counts exactly."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Backoff", "Outcome", "StateLog", "credentials_refused", "reconnect"]


class Backoff:
    """``next()`` gives the delay before the next attempt: doubling from ``initial`` up to
    ``maximum``, each drawn uniformly from its upper half (jitter spreads many cameras'
    reconnects apart). ``healthy()`` after a session that lasted resets it."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        healthy_after: float = 30.0,
        rng: Callable[[float, float], float] = random.uniform,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.healthy_after = healthy_after
        self._rng = rng
        self._clock = clock
        self.attempt = 0
        self._since: float | None = None

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self._rng(ceiling / 2, ceiling)

    def connected(self) -> None:
        self._since = self._clock()

    def disconnected(self) -> None:
        """Call when a session ends: a session that lasted ``healthy_after`` resets the backoff."""
        if self._since is not None and self._clock() - self._since >= self.healthy_after:
            self.attempt = 0
        self._since = None


class StateLog:
    """Logs a camera's connection state when it changes; repeats go to debug.
    ``on_change(state)`` hears every change too (the health registry)."""

    def __init__(self, log: Any, on_change: Callable[[str], None] | None = None) -> None:
        self._log = log
        self._on_change = on_change
        self.state: str | None = None
        self.repeats = 0

    def change(self, state: str, message: str, *, level: str = "info", **kw: Any) -> bool:
        """Log ``message`` at ``level`` if ``state`` is new; repeats go to debug.

        Returns whether it logged at ``level``."""
        if state == self.state:
            self.repeats += 1
            self._log.debug(message, state=state, repeats=self.repeats, **kw)
            return False
        if self.repeats:
            kw["previous_repeats"] = self.repeats
        self.state, self.repeats = state, 0
        getattr(self._log, level)(message, state=state, **kw)
        if self._on_change is not None:
            self._on_change(state)
        return True


@dataclass(frozen=True)
class Outcome:
    """What a failed attempt means: the state to report (said once per change), at which
    level, and how long to wait at least before the next (a rejected login: minutes)."""

    state: str
    message: str
    level: str = "warning"
    at_least: float = 0.0
    fields: Mapping[str, Any] = field(default_factory=dict)


def credentials_refused(what: str, reason: str, retry: float) -> Outcome:
    """A camera that refused the credentials: said once, as an error, and not tried again
    before ``retry`` seconds (a wrong password retried fast can lock the account)."""
    return Outcome(
        "auth-failed",
        f"camera refused the {what} credentials; check cameras.username/password",
        level="error",
        at_least=retry,
        fields={"reason": reason, "retry_in": retry},
    )


async def reconnect(
    attempt: Callable[[], Awaitable[bool]],
    *,
    classify: Callable[[Exception], Outcome | None],
    backoff: Backoff,
    state: StateLog,
    ended: Callable[[], None] | None = None,
    retrying: Callable[[], object] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``attempt`` until it returns True (its work is done). After an attempt that
    returns False (the connection ended) or raises what ``classify`` knows, wait the
    backoff and try again. ``ended`` runs after every attempt, cancelled ones included
    (clean-up); ``retrying`` only before a real retry (the reconnect counter: a shutdown
    is not a reconnect). An attempt reports its own success (``state.change("up", ...)``,
    ``backoff.connected()``) once it is up."""
    while True:
        outcome: Outcome | None = None
        try:
            if await attempt():
                return
        except Exception as exc:  # classified; what is not known propagates
            outcome = classify(exc)
            if outcome is None:
                raise
        finally:
            backoff.disconnected()
            if ended is not None:
                ended()
        delay = backoff.next()
        if outcome is not None:
            state.change(outcome.state, outcome.message, level=outcome.level, **outcome.fields)
            delay = max(delay, outcome.at_least)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        if retrying is not None:
            retrying()
        await sleep(delay)
