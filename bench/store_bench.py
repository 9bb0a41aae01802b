"""The event store (issue 13): insert throughput, search over millions of events, disk.

For SQLite (a file in a temporary directory) and PostgreSQL (a throwaway cluster
started here with ``initdb``/``pg_ctl``, PostgreSQL's default durability:
fsync on):

1. **Insert throughput**: events with two pictures referenced each, published on
   a real bus to the real store sink (batching, the writer thread, group commit)
   as fast as it takes them; events/s from the first publish to the last commit.
2. **Search** over ``--events`` stored events (10 million by default; loaded in
   bulk: rows built as the sink builds them, written with executemany/COPY,
   indexes made afterwards). ``--queries`` searches each, through the same
   query functions the API calls: a plate with look-alike tolerance 1, an exact
   plate, and the newest page (no filter): p50/p99/max in ms.
3. **Disk** per million events (rows and indexes; pictures are files and not
   counted): SQLite's file size, PostgreSQL's ``pg_total_relation_size``.

    python bench/store_bench.py [--events 10000000] [--insert 100000] [--queries 1000]
                                [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from _common import ROOT, discard, machine, percentiles, save, table, work_dir

sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text

from lprmeta.bus import Bus
from lprmeta.config import Secret, StoreConfig
from lprmeta.events import Event, ImageRef, Kind, Source
from lprmeta.stats import Stats
from lprmeta.store import queries
from lprmeta.store.db import open_engine, upgrade
from lprmeta.store.schema import metadata
from lprmeta.store.sink import StoreSink
from tests.tools.postgres import PgCluster

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def plate_of(n: int) -> str:
    r = random.Random(n)
    return (
        "".join(r.choice(LETTERS) for _ in range(2))
        + f"{r.randrange(10000):04d}"
        + r.choice(LETTERS)
    )


def event(n: int, plates: int, when: datetime) -> Event:
    plate = plate_of(n % plates)
    images = (
        ImageRef("plate", f"/var/lib/lprmeta/snaps/gate/{n}_plate.jpg", 21_000, f"{n:064x}"),
        ImageRef("full", f"/var/lib/lprmeta/snaps/gate/{n}_full.jpg", 98_000, f"{n + 1:064x}"),
    )
    return Event(
        kind=Kind.PLATE,
        camera=f"cam-{n % 50:02d}",
        source=Source.TCP,
        time=when,
        received=when,
        plate=plate,
        confidence=0.9,
        country="NLD",
        images=images,
        raw={"plate": plate, "Plate Color": "yellow", "Speed": "23", "Region": "NLD"},
        id=f"{n:028x}",
    )


# ----------------------------------------------------------------------------- insert


async def insert_rate(cfg: StoreConfig, n: int) -> dict[str, Any]:
    bus = Bus(dedup_window=0)
    sink = StoreSink(cfg, stats=Stats())
    await sink.aopen()
    sub = bus.subscribe("store", maxsize=n + 1, on_drop=sink.dropped)
    task = asyncio.create_task(sink.run(sub))
    events = [event(i, n // 4, T0 + timedelta(milliseconds=i)) for i in range(n)]
    t0 = time.perf_counter()
    marks: list[asyncio.Future[None]] = []
    for i, e in enumerate(events):
        bus.publish(e)
        if i % 1000 == 999 or i == n - 1:
            marks.append(sink.expect(e.id))
            await asyncio.sleep(0)  # let the sink take its batch, as inputs would
            if len(marks) > 20:  # at most ~20,000 events in flight: the queue's bound
                await marks[-21]
    await asyncio.gather(*marks)
    wall = time.perf_counter() - t0
    bus.close()
    await task
    await asyncio.to_thread(sink.close)
    return {"events": n, "seconds": round(wall, 2), "events_per_s": round(n / wall)}


# ----------------------------------------------------------------------------- bulk load

_INDEXES = ("events_received", "events_camera", "events_plate", "events_list", "events_kind")


def line_template() -> list[bytes]:
    """A real JSON line (two pictures, raw fields) cut where the varying values go."""
    from lprmeta.sinks.jsonl import encode_line  # noqa: PLC0415

    marked = event(0, 1, T0)
    marked = Event(
        **{
            **{f: getattr(marked, f) for f in marked.__dataclass_fields__},
            "id": "@ID@",
            "plate": "@PLATE@",
            "camera": "@CAM@",
            "raw": {"plate": "@PLATE@", "Plate Color": "yellow", "Speed": "23", "Region": "NLD"},
        }
    )
    line = encode_line(marked).replace(b"2026-01-01T00:00:00.000Z", b"@TIME@")
    parts: list[bytes] = []
    rest = line
    for marker in (b"@ID@", b"@CAM@", b"@TIME@", b"@TIME@", b"@PLATE@", b"@PLATE@"):
        head, _, rest = rest.partition(marker)
        parts.append(head)
    parts.append(rest)
    return parts


def lines(start: int, end: int, plates: int, parts: list[bytes]) -> list[bytes]:
    out = []
    for i in range(start, end):
        when = (T0 + timedelta(seconds=i * 0.26)).isoformat(timespec="milliseconds")
        stamp = when.replace("+00:00", "Z").encode()
        plate = plate_of(i % plates).encode()
        values = (f"{i:028x}".encode(), f"cam-{i % 50:02d}".encode(), stamp, stamp, plate, plate)
        chunks = [parts[0]]
        for value, part in zip(values, parts[1:], strict=True):
            chunks += (value, part)
        out.append(b"".join(chunks))
    return out


def _insert(engine: Engine, rows: queries.Rows) -> None:
    with engine.begin() as conn:
        queries.insert_lines(conn, rows)


def bulk_load(engines: dict[str, Engine], n: int, plates: int) -> float:
    """``n`` events with two pictures each into every engine, through the writer's own
    row building and inserts (indexes dropped first and made again at the end)."""
    t0 = time.perf_counter()
    for engine in engines.values():
        with engine.begin() as conn:
            for name in _INDEXES:
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    parts = line_template()
    seen: set[str] = set()
    chunk = 20_000
    for start in range(0, n, chunk):
        rows = queries.event_rows(lines(start, min(n, start + chunk), plates, parts), "bench", seen)
        seen |= rows.plates
        with ThreadPoolExecutor(len(engines)) as pool:  # the databases work side by side
            list(pool.map(partial(_insert, rows=rows), engines.values()))
        if (start + chunk) % 500_000 == 0:
            print(f"  loaded {start + chunk:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    for kind, engine in engines.items():
        print(f"  indexing {kind} ({time.perf_counter() - t0:.0f} s)", flush=True)
        with engine.begin() as conn:
            for index in metadata.tables["events"].indexes:
                index.create(conn, checkfirst=True)
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - t0


def search_latency(engine: Engine, plates: int, n_queries: int) -> dict[str, dict[str, float]]:
    r = random.Random(1)
    now = T0 + timedelta(days=40)
    out: dict[str, list[float]] = {"lookalike_tol1": [], "exact": [], "newest_page": []}
    with engine.connect() as conn:
        for i in range(n_queries):
            plate = plate_of(r.randrange(plates))
            # A misread: one character swapped for its look-alike, one for another.
            misread = plate.replace("B", "8").replace("O", "0")
            for name, params in (
                ("lookalike_tol1", {"plate": misread[:-1] + "X", "tolerance": "1"}),
                ("exact", {"plate": plate}),
                ("newest_page", {}),
            ):
                f = queries.parse_filters(params, now=now)
                t0 = time.perf_counter()
                page = queries.search(conn, f)
                out[name].append((time.perf_counter() - t0) * 1000)
                if name == "exact" and not page.events and i < 3:
                    print(f"  (no events for {plate}?)", flush=True)
    return {k: {q: round(v, 2) for q, v in percentiles(lat).items()} for k, lat in out.items()}


def disk_bytes(engine: Engine, cfg: StoreConfig) -> int:
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        return sum(p.stat().st_size for p in cfg.data_dir.glob("events.db*"))
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT sum(pg_total_relation_size(c)) FROM unnest("
                    "ARRAY['events', 'pictures', 'plate_variants']::regclass[]) AS c"
                )
            ).scalar_one()
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--insert", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    work = work_dir("lprmeta-bench-store-")
    results: dict[str, Any] = {"machine": machine(), "events": args.events}
    kinds = [args.only] if args.only else ["sqlite", "postgresql"]
    cluster: PgCluster | None = None
    try:
        configs: dict[str, StoreConfig] = {}
        for kind in kinds:
            if kind == "sqlite":
                configs[kind] = StoreConfig(data_dir=work / "sqlite", origin="bench")
            else:
                cluster = PgCluster()
                cluster.start(durable=True)
                url = cluster.new_database()
                configs[kind] = StoreConfig(url=Secret(url), data_dir=work / "pg", origin="bench")
        for kind, cfg in configs.items():
            print(f"{kind}: insert throughput ({args.insert:,} events)", flush=True)
            ins = asyncio.run(insert_rate(cfg, args.insert))
            print(f"  {ins['events_per_s']:,} events/s", flush=True)
            results[kind] = {"insert": ins}
        engines = {kind: open_engine(cfg) for kind, cfg in configs.items()}
        for engine in engines.values():
            with engine.begin() as conn:
                for table_name in ("events", "pictures", "plate_variants"):
                    conn.execute(text(f"DELETE FROM {table_name}"))  # noqa: S608
            upgrade(engine)
        plates = max(1, args.events // 10)  # each car comes back ten times
        print(f"loading {args.events:,} events ({plates:,} distinct plates)", flush=True)
        load_s = bulk_load(engines, args.events, plates)
        for kind, engine in engines.items():
            size = disk_bytes(engine, configs[kind])
            print(f"{kind}: {args.queries} searches of each kind", flush=True)
            search_latency(engine, plates, 20)  # warm the caches, as a running daemon's are
            results[kind].update(
                {
                    "stored_events": args.events,
                    "load_seconds": round(load_s, 1),
                    "disk_bytes": size,
                    "disk_mib_per_million": round(size / 2**20 / (args.events / 1e6), 1),
                    "search_ms": search_latency(engine, plates, args.queries),
                }
            )
            engine.dispose()
    finally:
        if cluster is not None:
            cluster.close()
        discard(work)
    save("store", results)
    rows = []
    for kind in kinds:
        r = results[kind]
        s = r["search_ms"]
        lookalike = s["lookalike_tol1"]
        rows += [
            (
                f"{kind}: insert, 2 pictures each",
                f"{r['insert']['events_per_s']:,} events/s",
                ">= 5,000",
                _ok(r["insert"]["events_per_s"] >= 5000),
            ),
            (
                f"{kind}: look-alike search (tol 1) p50/p99, {args.events:,} events",
                f"{lookalike['p50']:.1f} / {lookalike['p99']:.1f} ms",
                "p99 < 50",
                _ok(lookalike["p99"] < 50),
            ),
            (
                f"{kind}: exact plate p50/p99",
                f"{s['exact']['p50']:.1f} / {s['exact']['p99']:.1f} ms",
                "p99 < 50",
                _ok(s["exact"]["p99"] < 50),
            ),
            (
                f"{kind}: newest page p50/p99",
                f"{s['newest_page']['p50']:.1f} / {s['newest_page']['p99']:.1f} ms",
                "p99 < 20",
                _ok(s["newest_page"]["p99"] < 20),
            ),
            (f"{kind}: disk per million events", f"{r['disk_mib_per_million']:.0f} MiB", "", ""),
        ]
    print(f"\nStore on {results['machine']}:")
    print(table(rows))


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


if __name__ == "__main__":
    main()
