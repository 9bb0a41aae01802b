"""Containment: every input, sink and background task runs as a supervised *part*.

Owns what happens when a part raises what it did not expect; does not know what
a part does. The parts are written to handle their own expected failures (a
camera that hangs up, a broker that is away); what reaches the supervisor is a
bug or a value nobody foresaw. Such an exception:

* is logged once per part and kind of error, with the part named, the traceback
  without frame locals (they can hold secrets) and redacted like every record;
  repeats go to debug with a count;
* is counted (``part_failures`` under the part's camera or ``*``) and shown in
  ``/healthz`` and ``/metrics`` with the reason and when;
* restarts that one part after a jittered, capped backoff (reset after a part
  ran healthily for a while), while every other part keeps running.

Exceptions listed as *fatal* (a sink whose reader has gone, :class:`SinkError`)
are not contained: they end the daemon's TaskGroup, and the process exits
non-zero so that systemd restarts it.

Clock and random source are injectable (the backoff), so tests run without sleeping.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .health import iso_time
from .log import REDACTOR, get_logger
from .retry import Backoff
from .stats import Stats

__all__ = ["Part", "Supervisor"]


@dataclass
class Part:
    """One supervised part and what /healthz says of it."""

    name: str
    kind: str  # "input", "sink" or "task"
    camera: str = "*"
    state: str = "starting"  # starting, running, restarting, stopped
    since: float = 0.0  # time.time() of the last state change
    failures: int = 0
    last_error: str | None = None
    last_failure: float | None = None

    def set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "state": self.state,
            "since": iso_time(self.since),
        }
        if self.failures:
            out["failures"] = self.failures
            out["last_error"] = self.last_error
            out["last_failure"] = iso_time(self.last_failure) if self.last_failure else None
        return out


class Supervisor:
    def __init__(
        self,
        *,
        stats: Stats,
        fatal: tuple[type[BaseException], ...] = (),
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        healthy_after: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[float, float], float] = random.uniform,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = stats
        self.fatal = fatal
        self.parts: dict[str, Part] = {}
        self._backoff = (backoff_initial, backoff_max, healthy_after)
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._logged: set[tuple[str, str]] = set()
        self._log = get_logger("lprmeta.supervisor")

    def add(self, name: str, kind: str, camera: str = "*") -> Part:
        part = self.parts[name] = Part(name, kind, camera, since=time.time())
        return part

    def problems(self) -> list[str]:
        """What is not running, in words (empty when every part runs)."""
        return [
            f"{p.kind} {p.name} is {p.state}"
            + (f" after {p.last_error}" if p.state == "restarting" and p.last_error else "")
            for p in self.parts.values()
            if p.state not in ("running", "stopped")
        ]

    async def run(self, part: Part, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body()`` until it returns or is cancelled; restart it when it raises
        anything not fatal. Returning ends the part (``stopped``)."""
        initial, maximum, healthy = self._backoff
        backoff = Backoff(initial, maximum, healthy_after=healthy, rng=self._rng, clock=self._clock)
        while True:
            part.set("running")
            backoff.connected()
            try:
                await body()
            except asyncio.CancelledError:
                part.set("stopped")
                raise
            except self.fatal:
                part.set("stopped")
                raise
            except Exception as exc:  # noqa: BLE001  # containment is this class's purpose
                backoff.disconnected()
                delay = backoff.next()
                self._failed(part, exc, delay)
                part.set("restarting")
                await self._sleep(delay)
                continue
            part.set("stopped")
            return

    def _failed(self, part: Part, exc: Exception, delay: float) -> None:
        part.failures += 1
        # Redacted here, once: the text goes to /healthz and /metrics as well as the log.
        part.last_error = REDACTOR.clean(f"{type(exc).__name__}: {exc}")[:300]
        part.last_failure = time.time()
        n = self.stats.inc("part_failures", part.camera)
        self.stats.inc(f"part_failures:{part.name}")
        key = (part.name, type(exc).__name__)
        if key in self._logged:
            self._log.debug(
                "part failed again; restarting",
                part=part.name,
                error=part.last_error,
                failures=part.failures,
                restart_in=round(delay, 2),
            )
            return
        self._logged.add(key)
        self._log.error(
            "part failed unexpectedly; restarting it, the rest keeps running",
            part=part.name,
            kind=part.kind,
            camera=part.camera if part.camera != "*" else None,
            error=part.last_error,
            failures=part.failures,
            part_failures=n,
            restart_in=round(delay, 2),
            exc_info=exc,
        )
