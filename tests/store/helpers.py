"""Events and rows for the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from lprmeta.events import Event, ImageRef, Kind, ListType, Source
from lprmeta.sinks.jsonl import encode_line
from lprmeta.store import queries
from lprmeta.store.schema import events

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def make_event(
    n: int,
    *,
    plate: str | None = "AB1234",
    camera: str = "gate",
    kind: Kind = Kind.PLATE,
    list_type: ListType | None = None,
    received: datetime | None = None,
    images: tuple[ImageRef, ...] = (),
) -> Event:
    return Event(
        kind=kind,
        camera=camera,
        source=Source.TCP,
        time=received or T0 + timedelta(seconds=n),
        received=received or T0 + timedelta(seconds=n),
        plate=plate,
        list=list_type,
        images=images,
        id=f"ev{n:08d}",
    )


def store_events(engine: Engine, evs: list[Event], origin: str = "test") -> None:
    rows = queries.event_rows([encode_line(e) for e in evs], origin)
    with engine.begin() as conn:
        queries.insert_lines(conn, rows)


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def search(engine: Engine, **params: Any) -> queries.Page:
    with engine.connect() as conn:
        return queries.search(
            conn, queries.parse_filters({k: str(v) for k, v in params.items()}, now=T0)
        )


def plates(page: queries.Page) -> list[str]:
    return [e["plate"] for e in page.events]
