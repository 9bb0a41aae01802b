"""Reconnect policy shared by the inputs: jittered, capped exponential backoff, and a
state logger that speaks once per change of state, not once per retry."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Backoff", "StateLog"]


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
