"""``lprmeta events``: search the stored events from the command line.

The same filters as ``GET /api/events`` (the same parser: a bad one is named),
read straight from the database the configuration names (``--config``), or
the one given with ``--db``, or ``./lprmeta-data/events.db``. Prints a table on
a terminal, or JSON lines (``--json``) for scripts.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .config import Secret, StoreConfig

__all__ = ["add_events_parser", "cmd_events"]


def add_events_parser(
    sub: Any, add_logging: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "events",
        help="search the stored events (lprmeta events --plate AB12 --since 2h)",
        description="Search the events in the store, newest first.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", "-c", type=Path, help="the daemon's TOML configuration")
    where.add_argument("--db", help="a database URL: sqlite:///path/events.db or postgresql://...")
    p.add_argument("--plate", help="a plate (look-alikes folded; * and ? are wildcards)")
    p.add_argument("--tolerance", type=int, choices=[0, 1], help="also plates one edit away")
    p.add_argument("--camera", action="append", help="a camera name (repeat for more)")
    p.add_argument("--kind", help="event kinds, comma-separated (plate, counting, ...)")
    p.add_argument("--list", dest="list_", help="list types, comma-separated (white, black, ...)")
    p.add_argument("--since", help="received since: 2h, 30m, 7d, or an ISO 8601 time")
    p.add_argument("--until", help="received before (same forms)")
    p.add_argument("--limit", type=int, default=50, help="events at most (default 50)")
    p.add_argument("--json", action="store_true", help="JSON lines, one event each")
    add_logging(p)
    return p


def _store_config(args: argparse.Namespace) -> StoreConfig | None:
    if args.db:
        if args.db.startswith("sqlite:///"):
            path = Path(args.db.removeprefix("sqlite:///"))
            return StoreConfig(data_dir=path.parent, url=Secret(args.db))
        return StoreConfig(url=Secret(args.db))
    if args.config is not None:
        from .cli import _load  # noqa: PLC0415

        config = _load(args.config)
        if config is None:
            return None
        if not config.store.enabled:
            print(f"{args.config}: the store is off ([store] enabled = false)", file=sys.stderr)  # noqa: T201
            return None
        return config.store
    return StoreConfig()


def _row(e: dict[str, Any]) -> list[str]:
    conf = e.get("confidence")
    pictures = [i.get("role", "?") for i in e.get("images") or () if i.get("missing") is None]
    return [
        str(e.get("received") or ""),
        str(e.get("camera") or ""),
        str(e.get("kind") or ""),
        str(e.get("plate") or ""),
        f"{conf:.2f}" if isinstance(conf, int | float) else "",
        str(e.get("list") or ""),
        str(e.get("direction") or ""),
        ",".join(map(str, pictures)),
        str(e.get("id") or ""),
    ]


_HEADER = ["received", "camera", "kind", "plate", "conf", "list", "dir", "pictures", "id"]


def _table(events: list[dict[str, Any]]) -> str:
    rows = [_HEADER, *map(_row, events)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def cmd_events(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from .store import queries  # noqa: PLC0415
    from .store.db import current, open_engine  # noqa: PLC0415

    cfg = _store_config(args)
    if cfg is None:
        return 2
    params: dict[str, str] = {}
    for name, value in (
        ("plate", args.plate),
        ("tolerance", None if args.tolerance is None else str(args.tolerance)),
        ("camera", ",".join(args.camera) if args.camera else None),
        ("kind", args.kind),
        ("list", args.list_),
        ("since", args.since),
        ("until", args.until),
        ("limit", str(args.limit)),
    ):
        if value is not None:
            params[name] = value
    try:
        filters = queries.parse_filters(params)
    except queries.FilterError as exc:
        print(f"lprmeta events: --{exc.parameter}: {exc.reason}", file=sys.stderr)  # noqa: T201
        return 2
    url = cfg.url.get() if cfg.url is not None else ""
    sqlite_file = (
        cfg.sqlite_path
        if not url
        else Path(url.removeprefix("sqlite:///"))
        if url.startswith("sqlite:")
        else None
    )
    if sqlite_file is not None and not sqlite_file.exists():
        print(f"lprmeta events: no store at {sqlite_file}", file=sys.stderr)  # noqa: T201
        return 1
    engine = open_engine(cfg, pool_size=1)
    try:
        if current(engine) is None:
            print("lprmeta events: the database holds no lprmeta store", file=sys.stderr)  # noqa: T201
            return 1
        with engine.connect() as conn:
            page = queries.search(conn, filters)
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        print(f"lprmeta events: the store cannot be read: {orig}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        engine.dispose()
    out = sys.stdout
    if args.json:
        for event in page.events:
            out.write(orjson.dumps(event).decode() + "\n")
    else:
        out.write(_table(page.events) + "\n")
        more = " (more: raise --limit)" if page.next_cursor else ""
        print(f"{len(page.events)} events{more}", file=sys.stderr)  # noqa: T201
    out.flush()
    return 0
