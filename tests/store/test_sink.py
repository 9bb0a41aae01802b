"""The store sink: in order, each once, nothing lost while the database is away."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest

from lprmeta.bus import Bus
from lprmeta.config import Secret, StoreConfig
from lprmeta.errors import StoreUnavailable
from lprmeta.events import Event
from lprmeta.health import Health
from lprmeta.stats import Stats
from lprmeta.store.db import open_engine
from lprmeta.store.sink import StoreSink
from tests.tools.postgres import PgCluster

from .helpers import count, make_event


class Running:
    def __init__(self, sink: StoreSink, bus: Bus) -> None:
        self.sink = sink
        self.bus = bus
        self.stored = sink.listen()
        self.seen: list[str] = []
        self.more = asyncio.Event()

    def publish(self, events: list[Event]) -> list[asyncio.Future[None]]:
        futs = []
        for e in events:
            self.bus.publish(e)
            futs.append(self.sink.expect(e.id))
        return futs

    async def collect(self) -> None:
        while True:
            self.seen.append(orjson.loads(await self.stored.get())["id"])
            self.more.set()

    async def stored_ids(self, n: int, timeout: float = 30) -> list[str]:
        async with asyncio.timeout(timeout):
            while len(self.seen) < n:
                self.more.clear()
                await self.more.wait()
        return self.seen


@asynccontextmanager
async def running_sink(cfg: StoreConfig, stats: Stats | None = None) -> AsyncIterator[Running]:
    bus = Bus(dedup_window=0)
    health = Health(())
    sink = StoreSink(cfg, stats=stats or Stats(), health=health)
    await sink.aopen()
    sub = bus.subscribe("store", on_drop=sink.dropped)
    r = Running(sink, bus)
    task = asyncio.create_task(sink.run(sub))
    collector = asyncio.create_task(r.collect())
    try:
        yield r
    finally:
        collector.cancel()
        bus.close()
        await asyncio.wait_for(task, 10)
        await asyncio.to_thread(sink.close)


def batch(start: int, n: int) -> list[Event]:
    return [make_event(i, plate=f"PL{i:05d}") for i in range(start, start + n)]


async def test_events_are_stored_in_order_and_each_commit_is_awaited(
    store_config: StoreConfig,
) -> None:
    async with running_sink(store_config) as r:
        evs = batch(0, 1200)  # more than one batch of 1000
        await asyncio.wait_for(asyncio.gather(*r.publish(evs)), 20)
        assert await r.stored_ids(1200) == [e.id for e in evs]
    engine = open_engine(store_config)
    try:
        assert count(engine) == 1200
    finally:
        engine.dispose()


async def test_postgresql_stopped_and_restarted_loses_nothing(tmp_path: Path) -> None:
    cluster = PgCluster()
    await asyncio.to_thread(cluster.start)
    try:
        url = await asyncio.to_thread(cluster.new_database)
        cfg = StoreConfig(url=Secret(url), data_dir=tmp_path / "data", origin="t")
        stats = Stats()
        async with running_sink(cfg, stats) as r:
            await asyncio.gather(*r.publish(batch(0, 50)))
            await r.stored_ids(50)
            await asyncio.to_thread(cluster.stop)
            # The database is away: each event is kept (in the spool) and said so at once.
            await asyncio.wait_for(asyncio.gather(*r.publish(batch(50, 50))), 15)
            assert stats.get("store_spooled") == 50
            assert r.sink.health is not None
            assert r.sink.health.sinks["store"].state == "down"
            await asyncio.sleep(1.5)
            await asyncio.to_thread(cluster.start)
            await asyncio.gather(*r.publish(batch(100, 50)))
            ids = await r.stored_ids(150, timeout=40)
            assert ids == [e.id for e in batch(0, 150)]  # in order, each once
            assert r.sink.health.sinks["store"].state == "up"
        engine = open_engine(cfg)
        try:
            assert count(engine) == 150
        finally:
            engine.dispose()
        assert stats.get("store_errors") >= 1
    finally:
        await asyncio.to_thread(cluster.close)


async def test_sqlite_locked_by_another_writer_loses_nothing(tmp_path: Path) -> None:
    cfg = StoreConfig(data_dir=tmp_path / "data", origin="t")
    stats = Stats()
    async with running_sink(cfg, stats) as r:
        await asyncio.gather(*r.publish(batch(0, 5)))
        locked = threading.Event()
        release = threading.Event()

        def hold_lock() -> None:
            other = sqlite3.connect(cfg.sqlite_path, timeout=10)
            other.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(10)
            other.rollback()
            other.close()

        holder = threading.Thread(target=hold_lock)
        holder.start()
        await asyncio.to_thread(locked.wait)
        # Longer than the writer's busy timeout (2 s): "database is locked".
        await asyncio.wait_for(asyncio.gather(*r.publish(batch(5, 20))), 15)
        assert stats.get("store_spooled") >= 1
        release.set()
        await asyncio.to_thread(holder.join)
        await asyncio.gather(*r.publish(batch(25, 5)))
        assert await r.stored_ids(30, timeout=30) == [e.id for e in batch(0, 30)]
    engine = open_engine(cfg)
    try:
        assert count(engine) == 30
    finally:
        engine.dispose()


async def test_an_event_that_cannot_be_kept_is_refused_not_lost_silently(
    tmp_path: Path,
) -> None:
    # No database at that port, and room for two events in the spool.
    cfg = StoreConfig(
        url=Secret("postgresql://postgres@127.0.0.1:9/none"),
        data_dir=tmp_path / "data",
        spool_events=2,
        origin="t",
    )
    stats = Stats()
    async with running_sink(cfg, stats) as r:
        futs = r.publish(batch(0, 3))
        results = await asyncio.gather(*futs, return_exceptions=True)
        assert results[:2] == [None, None]
        assert isinstance(results[2], StoreUnavailable)
        assert stats.get("store_dropped") == 1
    # The two kept ones wait in the spool for the next start.
    assert (tmp_path / "data" / "store-spool.jsonl").read_bytes().count(b"\n") == 2


@pytest.mark.parametrize("n", [3])
async def test_the_spool_left_by_a_stopped_daemon_is_written_at_the_next_start(
    tmp_path: Path, n: int
) -> None:
    cfg = StoreConfig(data_dir=tmp_path / "data", origin="t")
    cfg.data_dir.mkdir(parents=True)
    from lprmeta.sinks.jsonl import encode_line

    cfg.spool_path.write_bytes(b"".join(encode_line(e) for e in batch(0, n)))
    async with running_sink(cfg) as r:
        await asyncio.gather(*r.publish(batch(n, 1)))
        assert await r.stored_ids(n + 1) == [e.id for e in batch(0, n + 1)]


async def test_an_event_the_full_queue_refused_fails_its_waiter_at_once(tmp_path: Path) -> None:
    cfg = StoreConfig(data_dir=tmp_path / "data", origin="t")
    bus = Bus(dedup_window=0)
    sink = StoreSink(cfg, stats=Stats())
    await sink.aopen()
    try:
        bus.subscribe("store", maxsize=1, on_drop=sink.dropped)  # nobody takes from it
        first, second = batch(0, 2)
        bus.publish(first)
        bus.publish(second)  # refused by the full queue, before anyone waits for it
        with pytest.raises(StoreUnavailable, match="queue is full"):
            await asyncio.wait_for(sink.expect(second.id), 1)
    finally:
        bus.close()
        await asyncio.to_thread(sink.close)
