"""The event bus: fan-in from every input, fan-out to every sink, duplicate merging.

Owns the per-sink queues and the dedup window; does not know what a sink does
with an event or where an event came from.

* ``publish`` never blocks and never awaits: an input hands an event over and
  goes on. Each subscriber (sink) has its own bounded queue, so a slow sink
  cannot stall an input or another sink. When a queue is full the event is
  dropped *for that sink only*, counted (``dropped:<sink>``) and logged.
* Duplicate reads of one car -- the same plate from the same camera within
  ``dedup_window`` seconds (sliding: every read of it extends the window) --
  become one event. A camera expected to deliver over several transports (say
  HTTP and RTSP) has its first read held up to ``merge_wait`` seconds, or until
  every one of its transports has delivered the plate, and the reads are merged
  into one richer event with all images. Reads that arrive after the event went
  out are counted (``duplicates``) and not emitted again. A camera with a single
  transport is never held: its events go out at once.
* ``close`` releases every held event and ends every subscription after the
  events already queued, so nothing accepted is lost on shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .deadlines import Deadlines
from .errors import UsageError
from .events import Event, Kind, plate_key
from .log import get_logger, log_counted
from .stats import Stats

__all__ = ["Bus", "Subscription"]

_END: Any = object()
# Each sink's queue is bounded in events and in bytes (a stalled stdout reader must not
# hold every hostile 8 MiB push): 64 MiB by default, [output] queue_bytes.
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
_MIN_WEIGHT = 1024
# Plates remembered for deduplication, at most (a camera sending 10^5 distinct plates a
# second must not grow it without bound; real sites see a few per second).
MAX_RECENT = 100_000


class Subscription:
    """One consumer's bounded queue. Iterate it; iteration ends when the bus closes.

    The bound is enforced in :meth:`offer` on an unbounded queue, so the end
    marker always fits even when the queue is full.
    """

    def __init__(
        self,
        bus: Bus,
        name: str,
        maxsize: int,
        accept: Callable[[Event], bool] | None = None,
        max_bytes: int = DEFAULT_QUEUE_BYTES,
        *,
        on_drop: Callable[[Event], None] | None = None,
    ) -> None:
        self.name = name
        self.on_drop = on_drop  # told of each event this subscription had to drop
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.bytes = 0  # about how much the queued events hold (Event.weight, at least 1 KiB)
        self._accept = accept
        self._bus = bus
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.dropped = 0
        self._ended = False  # no more offers
        self._done = False  # the consumer has seen the end

    def offer(self, event: Event, weight: int = 0) -> bool:
        """Queue the event; False when it had to be dropped (queue full, or ended).
        An event the subscriber does not want (``accept``) is not a drop."""
        if self._accept is not None and not self._accept(event):
            return True
        if self._ended or self._queue.qsize() >= self.maxsize:
            return False
        weight = max(weight, _MIN_WEIGHT)
        if self.bytes + weight > self.max_bytes and self.bytes:
            return False  # over its byte budget (one event always fits an empty queue)
        self.bytes += weight
        self._queue.put_nowait((event, weight))
        return True

    def end(self) -> None:
        """Finish after what is queued."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_END)

    def qsize(self) -> int:
        return self._queue.qsize() - (1 if self._ended and not self._done else 0)

    async def get(self) -> Event | None:
        """The next event, or ``None`` when the bus has closed and the queue is empty."""
        if self._done:
            return None
        return self._take(await self._queue.get())

    def get_nowait(self) -> Event | None:
        """An event if one is queued now, else ``None`` (check :attr:`done` for the end)."""
        if self._done or self._queue.empty():
            return None
        return self._take(self._queue.get_nowait())

    def _take(self, item: Any) -> Event | None:
        if item is _END:
            self._done = True
            return None
        event, weight = item
        self.bytes -= weight
        return event  # type: ignore[no-any-return]

    @property
    def done(self) -> bool:
        return self._done

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            yield event

    def close(self) -> None:
        """Stop receiving (the consumer is gone)."""
        self._bus.unsubscribe(self)


@dataclass
class _Held:
    event: Event
    seen: set[str]
    handle: asyncio.TimerHandle | None = None
    expected: frozenset[str] = field(default_factory=frozenset)
    weight: int = 0


class Bus:
    def __init__(
        self,
        *,
        dedup_window: float = 2.0,
        merge_wait: float = 0.5,
        transports: Mapping[str, frozenset[str]] | None = None,
        stats: Stats | None = None,
        clock: Callable[[], float] = time.monotonic,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
    ) -> None:
        self.dedup_window = dedup_window
        self.queue_bytes = queue_bytes
        self.merge_wait = merge_wait
        self._transports = dict(transports or {})
        self.stats = stats if stats is not None else Stats()
        self._clock = clock
        self._subs: list[Subscription] = []
        self._held: dict[tuple[str, str], _Held] = {}
        # (camera, plate key) -> monotonic time until which further reads are duplicates.
        self._recent: Deadlines[tuple[str, str]] = Deadlines()
        self._closed = False
        self._log = get_logger("lprmeta.bus")

    # ------------------------------------------------------------------ consumers

    def subscribe(
        self,
        name: str,
        *,
        maxsize: int = 10_000,
        accept: Callable[[Event], bool] | None = None,
        max_bytes: int | None = None,
        on_drop: Callable[[Event], None] | None = None,
    ) -> Subscription:
        """A bounded queue of every event from now on (only those ``accept`` wants)."""
        if self._closed:
            raise UsageError("the bus is closed")
        sub = Subscription(
            self, name, maxsize, accept, max_bytes or self.queue_bytes, on_drop=on_drop
        )
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub.end()

    # ------------------------------------------------------------------ producers

    def publish(self, event: Event, *, weight: int = 0) -> str | None:
        """Hand an event to the bus. Never blocks; after a close it is counted and refused.
        ``weight``: about how many bytes it holds (the queues' byte budgets). Returns the
        id of the event this read goes out in (now, or once merged), or None when it goes
        out in none (a duplicate of one already out, or refused)."""
        if self._closed:
            n = self.stats.inc("refused_after_close", event.camera)
            # Said once (then every 100th): at shutdown, every camera's reads in flight
            # arrive here, and a line each was most of the loop's work in those seconds.
            log_counted(
                self._log,
                n,
                "warning",
                "event after shutdown not delivered",
                camera=event.camera,
                refused_after_close=n,
            )
            return None
        self.stats.inc("received", event.camera)
        if event.kind is not Kind.PLATE or not event.plate or self.dedup_window <= 0:
            self._emit(event, weight)
            return event.id
        key = (event.camera, plate_key(event.plate))
        now = self._clock()
        held = self._held.get(key)
        if held is not None:
            held.event = held.event.merged_with(event)
            held.weight += weight
            held.seen.add(event.source.value)
            self.stats.inc("merged", event.camera)
            out = held.event.id
            if held.seen >= held.expected:
                self._release(key)
            return out
        self._recent.expire(now)
        until = self._recent.get(key)
        if until is not None and now < until:
            self._recent.remember(key, now + self.dedup_window, MAX_RECENT)
            n = self.stats.inc("duplicates", event.camera)
            self._log.debug(
                "duplicate read suppressed",
                camera=event.camera,
                plate=event.plate,
                source=event.source.value,
                duplicates=n,
            )
            return None
        expected = self._transports.get(event.camera, frozenset())
        if len(expected) > 1 and self.merge_wait > 0 and event.source.value in expected:
            loop = asyncio.get_running_loop()
            entry = _Held(event=event, seen={event.source.value}, expected=expected, weight=weight)
            entry.handle = loop.call_later(self.merge_wait, self._release, key)
            self._held[key] = entry
            return event.id
        self._remember(key, now)
        self._emit(event, weight)
        return event.id

    def _remember(self, key: tuple[str, str], now: float) -> None:
        # Past MAX_RECENT (a flood of distinct plates) the oldest is forgotten.
        self._recent.remember(key, now + self.dedup_window, MAX_RECENT)

    def _release(self, key: tuple[str, str]) -> None:
        held = self._held.pop(key, None)
        if held is None:
            return
        if held.handle is not None:
            held.handle.cancel()
        self._remember(key, self._clock())
        self._emit(held.event, held.weight)

    def _emit(self, event: Event, weight: int = 0) -> None:
        self.stats.inc("emitted", event.camera)
        for sub in self._subs:
            if not sub.offer(event, weight):
                sub.dropped += 1
                if sub.on_drop is not None:
                    sub.on_drop(event)
                n = self.stats.inc(f"dropped:{sub.name}", event.camera)
                log_counted(
                    self._log,
                    n,
                    "warning",
                    "sink queue full, event dropped for this sink",
                    sink=sub.name,
                    dropped=n,
                    camera=event.camera,
                    id=event.id,
                    step=1000,
                )

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        return self._closed

    def held(self) -> int:
        return len(self._held)

    def close(self) -> None:
        """Release held events, then end every subscription after what it has queued."""
        if self._closed:
            return
        for key in list(self._held):
            self._release(key)
        self._closed = True
        for sub in list(self._subs):
            sub.end()
