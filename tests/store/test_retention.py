"""Retention with a time-compressed clock: 30 simulated days of a busy gate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from lprmeta.config import StoreConfig
from lprmeta.events import ImageRef
from lprmeta.stats import Stats
from lprmeta.store.db import open_engine
from lprmeta.store.schema import events as events_table

from .helpers import make_event
from .test_sink import running_sink

PICTURE = 2000  # bytes
PER_HOUR = 4
START = datetime(2026, 10, 1, tzinfo=UTC)


def disk_use(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.jpg"))


async def simulate(cfg: StoreConfig, root: Path, days: int, stats: Stats) -> dict[str, datetime]:
    """Hour by hour: cars with a picture each; retention after every simulated day.
    Returns when each picture was taken (by path)."""
    now = START
    taken: dict[str, datetime] = {}
    n = 0
    async with running_sink(cfg, stats) as r:
        r.sink.clock = lambda: now.timestamp()  # noqa: PLW0108  # late-bound: the simulated now
        r.sink.snapshot_root = root.resolve()
        for hour in range(days * 24):
            now = START + timedelta(hours=hour)
            evs = []
            for _ in range(PER_HOUR):
                n += 1
                path = root / f"{n:06d}.jpg"
                path.write_bytes(b"\xff\xd8\xff" + bytes(PICTURE - 3))
                taken[str(path)] = now
                img = ImageRef("plate", str(path), PICTURE, f"{n:064x}")
                evs.append(make_event(n, plate=f"AB{n:05d}", received=now, images=(img,)))
            await asyncio.gather(*r.publish(evs))
            if hour % 24 == 23:
                while (await r.sink.retain()).more:
                    pass
                budget = cfg.max_pictures_bytes
                assert budget is None or disk_use(root) <= budget
                kept_from = now - timedelta(days=cfg.keep_days)
                on_disk = {str(p) for p in root.rglob("*.jpg")}
                for path, when in taken.items():
                    if when < kept_from:
                        assert path not in on_disk, "a picture older than keep_days was kept"
                    elif stats.get("retention_forced") == 0:
                        assert path in on_disk, "a picture younger than keep_days was removed"
    return taken


async def test_thirty_days_within_keep_days_and_the_budget(tmp_path: Path) -> None:
    root = tmp_path / "snapshots"
    root.mkdir()
    day = 24 * PER_HOUR * PICTURE
    cfg = StoreConfig(
        data_dir=tmp_path / "data",
        keep_days=7,
        keep_events_days=20,
        max_pictures_bytes=9 * day,  # more than keep_days needs: never forced
        origin="t",
    )
    stats = Stats()
    await simulate(cfg, root, 30, stats)
    assert stats.get("retention_forced") == 0
    assert stats.get("retention_pictures_removed") > 0
    engine = open_engine(cfg)
    try:
        with engine.connect() as conn:
            oldest = conn.execute(select(events_table.c.received).order_by("received_us")).first()
    finally:
        engine.dispose()
    assert oldest is not None
    last = START + timedelta(days=30) - timedelta(hours=1)
    assert datetime.fromisoformat(oldest.received) >= last - timedelta(days=20, hours=1)


@pytest.mark.parametrize("budget_days", [3])
async def test_a_tight_budget_removes_younger_pictures_and_says_so_once(
    tmp_path: Path, budget_days: int
) -> None:
    root = tmp_path / "snapshots"
    root.mkdir()
    day = 24 * PER_HOUR * PICTURE
    cfg = StoreConfig(
        data_dir=tmp_path / "data",
        keep_days=7,
        keep_events_days=30,
        max_pictures_bytes=budget_days * day,
        origin="t",
    )
    stats = Stats()
    with capture_logs() as logs:
        await simulate(cfg, root, 10, stats)
    assert stats.get("retention_forced") > 0
    said = [e for e in logs if "disk budget forces" in e["event"]]
    assert len(said) == 1
    assert disk_use(root) <= budget_days * day


async def test_only_this_daemons_pictures_are_removed(tmp_path: Path) -> None:
    """Several daemons share one database: each cleans up its own disk only."""
    from lprmeta.sinks.jsonl import encode_line
    from lprmeta.store import queries

    root = tmp_path / "snapshots"
    root.mkdir()
    cfg = StoreConfig(data_dir=tmp_path / "data", keep_days=1, keep_events_days=1, origin="us")
    old = START - timedelta(days=10)
    mine, theirs = root / "mine.jpg", root / "theirs.jpg"
    for path in (mine, theirs):
        path.write_bytes(b"\xff\xd8\xff" + bytes(100))
    stats = Stats()
    async with running_sink(cfg, stats) as r:
        r.sink.clock = START.timestamp
        r.sink.snapshot_root = root.resolve()
        await asyncio.gather(
            *r.publish(
                [make_event(1, received=old, images=(ImageRef("plate", str(mine), 103, None),))]
            )
        )
        other = make_event(2, received=old, images=(ImageRef("plate", str(theirs), 103, None),))
        assert r.sink.engine is not None
        with r.sink.engine.begin() as conn:  # written by another daemon
            queries.insert_lines(conn, queries.event_rows([encode_line(other)], "them"))
        while (await r.sink.retain()).more:
            pass
        with r.sink.engine.connect() as conn:
            ids = {row.id for row in conn.execute(select(events_table.c.id))}
    assert not mine.exists()
    assert theirs.exists()
    assert ids == {"ev00000002"}
    assert stats.get("retention_events_removed") == 1
