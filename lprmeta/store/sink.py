"""The store sink: every event into the database, in order, once; nothing lost while
the database is away.

A bus consumer like any sink. Events are taken from its subscription in batches
(whatever is queued, up to ``[store] batch``) and written by one writer thread
in one transaction per batch (group commit): the event loop never touches the
database or the disk. A batch the database refuses (PostgreSQL stopped, SQLite
locked longer than its busy timeout) goes to the store's spool file in the data
directory, and every later batch behind it, so that order is kept; the writer
retries with backoff and drains the spool into the database once it answers.
The event ``id`` is the primary key: a batch written twice (a retry after a
commit whose answer was lost) stores each event once.

Durability for HTTP pushes: :meth:`StoreSink.expect` gives a future that is
done once the event is committed to the database or written to the spool; the
HTTP receiver answers 200 only then (503 if it could not be kept).

Retention (:meth:`StoreSink.retain_once`) runs on the same writer thread, a
bounded amount of work per pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..bus import Subscription
from ..config import StoreConfig
from ..errors import SchemaError, StoreUnavailable
from ..events import Event
from ..health import Health
from ..log import get_logger, log_counted
from ..sinks.jsonl import encode_line
from ..sinks.spool import Spool
from ..stats import Stats
from . import queries
from .db import open_engine, upgrade

__all__ = ["RetentionPass", "StoreSink"]

# Plates whose look-alike variants are known to be stored (a bounded memory of them).
_KNOWN_PLATES = 200_000
RETENTION_BATCH = 500  # pictures or events per step of a retention pass
MAX_STEPS = 20  # steps per pass at most: a pass is bounded, the next comes soon
LISTENER_QUEUE = 1000
_REMEMBERED_REFUSALS = 10_000


@dataclass
class _Outcome:
    stored: list[bytes] = field(default_factory=list)  # now in the database
    kept: set[str] = field(default_factory=set)  # ids durable (database or spool)
    refused: set[str] = field(default_factory=set)  # ids neither could take


@dataclass
class RetentionPass:
    pictures_removed: int = 0
    bytes_removed: int = 0
    events_removed: int = 0
    forced: int = 0  # pictures younger than keep_days removed for the disk budget
    more: bool = False  # a step was full: run again soon


class StoreSink:
    name = "store"

    def __init__(
        self,
        cfg: StoreConfig,
        *,
        stats: Stats,
        health: Health | None = None,
        snapshot_root: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.stats = stats
        self.health = health
        self.snapshot_root = snapshot_root.resolve() if snapshot_root is not None else None
        self.clock = clock
        self.engine: Engine | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lprmeta-store")
        self._spool: Spool | None = None
        self._ready = False  # the schema is known to be up to date
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._delay = 0.5
        self._known: set[str] = set()
        self._waiters: dict[str, asyncio.Future[None]] = {}
        # Events the queue refused before anyone asked (publish comes before expect).
        self._refused: OrderedDict[str, str] = OrderedDict()
        self._listeners: set[asyncio.Queue[bytes]] = set()
        self.kept_bytes: int | None = None  # this daemon's pictures on disk (retention)
        self._forced_said = False
        self._log = get_logger("lprmeta.store")

    # ----------------------------------------------------------------- lifecycle

    def open(self) -> None:
        """At start-up (off the loop): the spool, the engine, the schema. A database that
        cannot be reached is not fatal (events wait in the spool); a schema from a newer
        lprmeta is (SchemaError)."""
        self.cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self._spool = Spool(
            self.cfg.spool_path, self.cfg.spool_events, limit_bytes=self.cfg.spool_bytes
        )
        if self._spool.waiting:
            self._log.info("events wait in the store spool", events=self._spool.waiting)
        self.engine = open_engine(self.cfg)
        try:
            self._prepare()
        except StoreUnavailable as exc:
            self._log.warning("database unavailable at start; events wait", error=str(exc))

    async def aopen(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self.open)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
        if self.engine is not None:
            self.engine.dispose()
        self._pool.shutdown(wait=True)

    def _prepare(self) -> None:
        if self._ready:
            return
        assert self.engine is not None
        try:
            before = upgrade(self.engine)
        except SchemaError:
            raise
        except SQLAlchemyError as exc:
            raise StoreUnavailable(_reason(exc)) from None
        if before is None:
            self._log.info("store created", database=self.engine.url.render_as_string())
        self._ready = True

    # ----------------------------------------------------------------- durability

    @property
    def commit_timeout(self) -> float:
        return self.cfg.commit_timeout

    def expect(self, event_id: str) -> asyncio.Future[None]:
        """A future done once this event is kept (database or spool); failed with
        StoreUnavailable if it cannot be."""
        fut = self._waiters.get(event_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            why = self._refused.pop(event_id, None)
            if why is not None:
                fut.set_exception(StoreUnavailable(why))
            else:
                self._waiters[event_id] = fut
        return fut

    def dropped(self, event: Event) -> None:
        """The store's queue had no room for this event (the bus says so)."""
        self._settle((), (event.id,), "the store's queue is full")

    def _settle(self, kept: Iterable[str], refused: Iterable[str], why: str) -> None:
        for event_id in kept:
            fut = self._waiters.pop(event_id, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        for event_id in refused:
            fut = self._waiters.pop(event_id, None)
            if fut is None:
                self._refused[event_id] = why
                if len(self._refused) > _REMEMBERED_REFUSALS:
                    self._refused.popitem(last=False)
            elif not fut.done():
                fut.set_exception(StoreUnavailable(why))

    # ----------------------------------------------------------------- listeners

    def listen(self) -> asyncio.Queue[bytes]:
        """A queue of the JSON lines of events as they are stored (``/api/stream``)."""
        q: asyncio.Queue[bytes] = asyncio.Queue(LISTENER_QUEUE)
        self._listeners.add(q)
        return q

    def unlisten(self, q: asyncio.Queue[bytes]) -> None:
        self._listeners.discard(q)

    def _announce(self, lines: list[bytes]) -> None:
        for q in list(self._listeners):
            for line in lines:
                try:
                    q.put_nowait(line)
                except asyncio.QueueFull:
                    self.stats.inc("store_stream_lagged")
                    break

    # ----------------------------------------------------------------- the sink

    async def run(self, sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                waiting = self._spool is not None and self._spool.waiting > 0
                try:
                    event = await (
                        asyncio.wait_for(sub.get(), timeout=self._delay) if waiting else sub.get()
                    )
                except TimeoutError:
                    outcome = await loop.run_in_executor(self._pool, self._write, [])
                    self._after(outcome)
                    continue
                if event is None:
                    break
                if self.cfg.commit_wait > 0 and sub.qsize() < self.cfg.batch - 1:
                    # Group commit: a transaction costs ~0.6 ms whatever its size, so at
                    # a few hundred events a second, wait a moment for company.
                    await asyncio.sleep(self.cfg.commit_wait)
                batch = [event]
                while len(batch) < self.cfg.batch and (more := sub.get_nowait()) is not None:
                    batch.append(more)
                outcome = await loop.run_in_executor(self._pool, self._write, batch)
                self._after(outcome)
        finally:
            left = self._spool.waiting if self._spool is not None else 0
            if left:
                self._log.warning("stopping; events kept in the store spool", events=left)
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(StoreUnavailable("the store's writer stopped"))
            self._waiters.clear()

    def _after(self, outcome: _Outcome) -> None:
        self._settle(outcome.kept, outcome.refused, "the database is away and the spool is full")
        if outcome.stored:
            self.stats.inc("stored", "*", len(outcome.stored))
            self._announce(outcome.stored)
        if self.health is not None:
            self.health.set_sink(self.name, "up" if self._down_since is None else "down")

    # ----------------------------------------------------------------- writer thread

    def _write(self, batch: list[Event]) -> _Outcome:
        """On the writer thread: this batch into the database, or behind the spool (the
        lines are made here too: a batch of 1,000 is ~15 ms of encoding, off the loop)."""
        lines = [encode_line(e) for e in batch]
        ids = [e.id for e in batch]
        out = _Outcome()
        spool = self._spool
        assert spool is not None
        if not spool.waiting and lines and self._can_try():
            try:
                self._insert(lines)
            except StoreUnavailable as exc:
                self._went_down(exc)
            else:
                out.stored = lines
                out.kept.update(ids)
                return out
        for line, event_id in zip(lines, ids, strict=True):
            try:
                kept = spool.append(line)
            except OSError as exc:
                kept = False
                self._log.error("store spool cannot be written", error=exc.strerror)
            if kept:
                out.kept.add(event_id)
                self.stats.inc("store_spooled")
            else:
                out.refused.add(event_id)
                n = self.stats.inc("store_dropped")
                log_counted(self._log, n, "error", "store spool full, event not stored", dropped=n)
        if self._can_try():
            self._drain(out)
        return out

    def _can_try(self) -> bool:
        return self._down_since is None or time.monotonic() >= self._retry_at

    def _drain(self, out: _Outcome) -> None:
        spool = self._spool
        assert spool is not None
        while spool.waiting:
            records = spool.peek_many(self.cfg.batch)
            if not records:
                continue  # damage skipped
            try:
                self._insert(records)
            except StoreUnavailable as exc:
                self._went_down(exc)
                return
            spool.ack_many(records)
            out.stored += records

    def _insert(self, lines: list[bytes]) -> None:
        assert self.engine is not None
        if len(self._known) > _KNOWN_PLATES:
            self._known.clear()
        rows = queries.event_rows(lines, self.cfg.origin, self._known)
        try:
            self._prepare()
            with self.engine.begin() as conn:
                queries.insert_lines(conn, rows)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(_reason(exc)) from None
        self._known |= rows.plates
        if self.kept_bytes is not None:
            self.kept_bytes += rows.kept_bytes
        if self._down_since is not None:
            self._log.info(
                "database back; events written",
                after_seconds=round(time.monotonic() - self._down_since, 1),
            )
            self._down_since = None
            self._delay = 0.5

    def _went_down(self, exc: StoreUnavailable) -> None:
        n = self.stats.inc("store_errors")
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._log.warning(
                "database unavailable; events wait in the spool", error=str(exc), errors=n
            )
        else:
            self._delay = min(self._delay * 2, 10.0)
        self._retry_at = time.monotonic() + self._delay

    # ----------------------------------------------------------------- retention

    async def retention_loop(self) -> None:
        while True:
            result = await self.retain()
            await asyncio.sleep(0.05 if result.more else self.cfg.retention_interval)

    async def retain(self) -> RetentionPass:
        """One retention pass on the writer thread, counted."""
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, self.retain_once)
        self._count(result)
        return result

    def _count(self, r: RetentionPass) -> None:
        for name, n in (
            ("retention_pictures_removed", r.pictures_removed),
            ("retention_bytes_removed", r.bytes_removed),
            ("retention_events_removed", r.events_removed),
            ("retention_forced", r.forced),
        ):
            if n:
                self.stats.inc(name, "*", n)

    def retain_once(self) -> RetentionPass:
        """One bounded pass (writer thread): pictures past ``keep_days``, then the oldest
        pictures while over the disk budget, then events past ``keep_events_days``."""
        r = RetentionPass()
        if self.engine is None or self._down_since is not None:
            return r
        cfg = self.cfg
        now_us = int(self.clock() * 1_000_000)
        young_from = now_us - int(cfg.keep_days * 86_400e6)
        try:
            self._prepare()
            with self.engine.begin() as conn:
                if self.kept_bytes is None:
                    self.kept_bytes = queries.kept_picture_bytes(conn, cfg.origin)
                for _ in range(MAX_STEPS):
                    rows = queries.oldest_pictures(conn, cfg.origin, RETENTION_BATCH, young_from)
                    self._remove_pictures(
                        conn, rows, "removed by retention: older than keep_days", r
                    )
                    if len(rows) < RETENTION_BATCH:
                        break
                else:
                    r.more = True
                budget = cfg.max_pictures_bytes
                steps = 0
                while budget is not None and self.kept_bytes > budget and steps < MAX_STEPS:
                    steps += 1
                    rows = queries.oldest_pictures(conn, cfg.origin, RETENTION_BATCH)
                    if not rows:
                        break
                    over = self.kept_bytes - budget
                    take = []
                    for row in rows:
                        if over <= 0:
                            break
                        take.append(row)
                        over -= row.bytes or 0
                    forced = sum(1 for row in take if row.received_us >= young_from)
                    self._remove_pictures(conn, take, "removed by retention: disk budget", r)
                    r.forced += forced
                    if forced and not self._forced_said:
                        self._forced_said = True
                        self._log.warning(
                            "disk budget forces removing pictures younger than keep_days",
                            max_pictures_bytes=budget,
                            keep_days=cfg.keep_days,
                        )
                if budget is not None and self.kept_bytes > budget:
                    r.more = True
                old_us = now_us - int(cfg.keep_events_days * 86_400e6)
                for _ in range(MAX_STEPS):
                    ids = queries.oldest_events(conn, cfg.origin, old_us, RETENTION_BATCH)
                    if not ids:
                        break
                    rows = queries.kept_pictures_of(conn, ids)
                    self._remove_pictures(conn, rows, "removed with its event", r, mark=False)
                    queries.delete_events(conn, ids)
                    r.events_removed += len(ids)
                    if len(ids) < RETENTION_BATCH:
                        break
                else:
                    r.more = True
        except SQLAlchemyError as exc:
            self._log.warning("retention pass failed; tried again later", error=_reason(exc))
            return r
        return r

    def _remove_pictures(
        self, conn: Connection, rows: list[Any], why: str, r: RetentionPass, *, mark: bool = True
    ) -> None:
        for row in rows:
            if row.path:
                self._unlink(row.path)
        if mark:
            queries.mark_pictures_removed(conn, [(row.event_id, row.n) for row in rows], why)
        removed = sum(row.bytes or 0 for row in rows)
        r.pictures_removed += len(rows)
        r.bytes_removed += removed
        if self.kept_bytes is not None:
            self.kept_bytes -= removed

    def _unlink(self, path: str) -> None:
        p = Path(path)
        if self.snapshot_root is not None and not p.resolve().is_relative_to(self.snapshot_root):
            self._log.warning("picture outside the snapshot directory not removed", path=path)
            return
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}"
