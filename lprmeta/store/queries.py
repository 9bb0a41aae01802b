"""What the store writes and what it answers, as functions of a SQLAlchemy connection.

Pure of I/O policy: nothing here starts a thread, opens an engine or knows about
asyncio. The writer (:mod:`lprmeta.store.sink`), the API and ``lprmeta events``
call these with a connection of their own, off the event loop.

Search filters come from users (query strings, the command line):
:func:`parse_filters` turns them into :class:`Filters` or raises
:class:`FilterError` naming the parameter. Every value reaches SQL as a bound
parameter; none is ever formatted into a statement.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from ..events import Kind, ListType
from ..lists import fold, levenshtein
from .schema import events, pictures, plate_variants

__all__ = [
    "MAX_LIMIT",
    "MAX_TOLERANCE",
    "FilterError",
    "Filters",
    "Page",
    "StoredPicture",
    "event_rows",
    "get_event",
    "get_picture",
    "insert_lines",
    "parse_filters",
    "parse_when",
    "search",
]

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
# The store indexes plates with one character deleted (SymSpell, depth 1): a search
# finds every plate within one edit after look-alike folding, and nothing is guessed.
MAX_TOLERANCE = 1
# A look-alike search of a very short plate could match thousands of plates; the
# closest this many are searched.
MAX_CANDIDATES = 500
MAX_FILTER_TEXT = 128
MAX_PAGE_BYTES = 16 * 1024 * 1024
KINDS = tuple(k.value for k in Kind)
LISTS = (*(t.value for t in ListType), "none")
_RELATIVE = re.compile(r"^([0-9]{1,6})\s*(s|m|h|d|w)$")
# Microseconds a cursor or a time may hold: what fits a 64-bit column, and a datetime.
_MAX_US = 2**62
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FilterError(ValueError):
    """A search parameter that cannot be read: ``parameter`` names it."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Filters:
    plate: str | None = None
    tolerance: int = 0
    camera: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    list: tuple[str, ...] = ()
    since_us: int | None = None
    until_us: int | None = None
    cursor: tuple[int, str] | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class Page:
    events: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StoredPicture:
    role: str
    path: str | None
    bytes: int | None
    sha256: str | None
    missing: str | None
    origin: str


# --------------------------------------------------------------------------- filters


def to_us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def parse_when(text: str, now: datetime, parameter: str) -> int:
    """``2h``, ``30m``, ``7d`` (that long ago), or an ISO 8601 time (UTC when it says
    no zone): microseconds since the epoch."""
    text = text.strip()
    try:
        m = _RELATIVE.match(text)
        if m:
            return to_us(now - timedelta(seconds=int(m[1]) * _UNITS[m[2]]))
        when = datetime.fromisoformat(text.replace("z", "Z"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return to_us(when)
    except ValueError:
        raise FilterError(
            parameter, "expected a time such as 2026-11-29T08:00:00Z, or an age such as 2h"
        ) from None
    except OverflowError:  # "999999w" ago, or year 1 at +14:00: before the calendar starts
        raise FilterError(parameter, "out of the range of times") from None


def _words(params: Mapping[str, str | Sequence[str]], name: str) -> tuple[str, ...]:
    raw = params.get(name)
    if raw is None:
        return ()
    values = [raw] if isinstance(raw, str) else list(raw)
    out: list[str] = []
    for value in values:
        for word in value.split(","):
            if word := word.strip():
                if len(word) > MAX_FILTER_TEXT:
                    raise FilterError(name, f"longer than {MAX_FILTER_TEXT} characters")
                out.append(word)
    return tuple(out)


def _one(params: Mapping[str, str | Sequence[str]], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        if len(raw) != 1:
            raise FilterError(name, "given more than once")
        raw = raw[0]
    if len(raw) > MAX_FILTER_TEXT:
        raise FilterError(name, f"longer than {MAX_FILTER_TEXT} characters")
    return raw.strip() or None


def _digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes ``²``, which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def _integer(text: str | None, name: str, low: int, high: int, default: int) -> int:
    if text is None:
        return default
    if not _digits(text) or not low <= int(text) <= high:
        raise FilterError(name, f"expected a whole number from {low} to {high}")
    return int(text)


def encode_cursor(received_us: int, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"{received_us}:{event_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raw = ""
    us, _, event_id = raw.partition(":")
    if not event_id or len(event_id) > 64 or not _digits(us.removeprefix("-")) or len(us) > 20:
        raise FilterError("cursor", "not a cursor this API gave (use next_cursor as is)")
    if abs(int(us)) > _MAX_US:
        raise FilterError("cursor", "not a cursor this API gave (use next_cursor as is)")
    return int(us), event_id


KNOWN_PARAMETERS = frozenset(
    {"plate", "tolerance", "camera", "kind", "list", "since", "until", "cursor", "limit"}
)


def parse_filters(
    params: Mapping[str, str | Sequence[str]], *, now: datetime | None = None
) -> Filters:
    """Search filters from query-string-like parameters; FilterError names the bad one."""
    for name in params:
        if name not in KNOWN_PARAMETERS:
            raise FilterError(name, "unknown parameter")
    now = now or datetime.now(UTC)
    plate = _one(params, "plate")
    if plate is not None and not fold(plate.replace("*", "").replace("?", "")) and plate != "*":
        raise FilterError("plate", "has no letters or digits")
    kinds = _words(params, "kind")
    for k in kinds:
        if k not in KINDS:
            raise FilterError("kind", f"expected one of {', '.join(KINDS)}")
    lists = _words(params, "list")
    for name in lists:
        if name not in LISTS:
            raise FilterError("list", f"expected one of {', '.join(LISTS)}")
    since = _one(params, "since")
    until = _one(params, "until")
    cursor = _one(params, "cursor")
    filters = Filters(
        plate=plate,
        tolerance=_integer(_one(params, "tolerance"), "tolerance", 0, MAX_TOLERANCE, 0),
        camera=_words(params, "camera"),
        kind=kinds,
        list=lists,
        since_us=parse_when(since, now, "since") if since else None,
        until_us=parse_when(until, now, "until") if until else None,
        cursor=decode_cursor(cursor) if cursor else None,
        limit=_integer(_one(params, "limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT),
    )
    if filters.tolerance and plate and ("*" in plate or "?" in plate):
        raise FilterError("tolerance", "cannot be combined with a wildcard plate")
    return filters


# --------------------------------------------------------------------------- writing


def _insert(conn: Connection, table: Any) -> Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise ValueError(f"unsupported database {conn.dialect.name}")


def _us(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return to_us(when)


def _variants(folded: str) -> Iterator[str]:
    yield folded
    for drop in range(len(folded)):
        yield folded[:drop] + folded[drop + 1 :]


@dataclass
class Rows:
    events: list[dict[str, Any]] = field(default_factory=list)
    pictures: list[dict[str, Any]] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)
    plates: set[str] = field(default_factory=set)  # folded plates whose variants are here
    kept_bytes: int = 0  # bytes of the saved pictures among them (the disk budget)


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def event_rows(lines: Iterable[bytes], origin: str, known_plates: Set[str] = frozenset()) -> Rows:
    """The rows of events given as JSON lines (as written to stdout or the spool); the
    variants of plates in ``known_plates`` (stored already) are left out. The caller
    adds ``rows.plates`` to what it knows once the rows are committed."""
    rows = Rows()
    for line in lines:
        data = orjson.loads(line)
        event_id = str(data["id"])[:64]
        received_us = _us(data.get("received")) or 0
        plate = _text(data.get("plate"), 64)
        folded = fold(plate)[:64] if plate else None
        confidence = data.get("confidence")
        rows.events.append(
            {
                "id": event_id,
                "received_us": received_us,
                "received": str(data.get("received"))[:40],
                "time": _text(data.get("time"), 40),
                "camera": str(data.get("camera"))[:128],
                "source": str(data.get("source"))[:16],
                "kind": str(data.get("kind"))[:32],
                "plate": plate,
                "plate_folded": folded or None,
                "list": _text(data.get("list"), 16),
                "direction": _text(data.get("direction"), 16),
                "confidence": float(confidence) if isinstance(confidence, int | float) else None,
                "country": _text(data.get("country"), 64),
                "origin": origin,
                "line": line.decode("utf-8").rstrip("\n"),
            }
        )
        for n, image in enumerate(data.get("images") or ()):
            path = image.get("path")
            missing = image.get("missing")
            if path is None and missing is None:
                missing = "not saved"  # a URL only, never fetched
            size = image.get("bytes")
            rows.pictures.append(
                {
                    "event_id": event_id,
                    "n": n,
                    "role": str(image.get("role"))[:64],
                    "path": path,
                    "bytes": size if isinstance(size, int) else None,
                    "sha256": _text(image.get("sha256"), 64),
                    "missing": missing,
                    "received_us": received_us,
                    "origin": origin,
                }
            )
            if path is not None and missing is None and isinstance(size, int):
                rows.kept_bytes += size
        if folded and folded not in known_plates and folded not in rows.plates:
            rows.plates.add(folded)
            rows.variants += ({"variant": v, "folded": folded} for v in set(_variants(folded)))
    return rows


def insert_lines(conn: Connection, rows: Rows) -> None:
    """Insert in the caller's transaction; an event already stored (its id) is left as
    it is, so a retried batch is harmless."""
    for table, items in ((events, rows.events), (pictures, rows.pictures)):
        if items:
            _insert_many(conn, table, items)
    if rows.variants:
        _insert_many(conn, plate_variants, rows.variants)


def _insert_many(conn: Connection, table: Table, items: list[dict[str, Any]]) -> None:
    if conn.dialect.name != "postgresql":
        conn.execute(_insert(conn, table), items)  # sqlite3's executemany: fast enough
        return
    # PostgreSQL: COPY the batch into a temporary table (emptied at commit), then one
    # INSERT ... SELECT ... ON CONFLICT DO NOTHING. A row-by-row executemany costs ~25 us
    # a row in the driver; COPY's rows are formatted in psycopg's C code. The values
    # travel as COPY data, never as SQL text; the names come from the schema.
    cols = [c.name for c in table.columns if c.name in items[0]]
    names = ", ".join(cols)
    stage = f"lprmeta_stage_{table.name}"
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for item in items:
                copy.write_row([item[c] for c in cols])
        cur.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage} "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )


# --------------------------------------------------------------------------- reading


def _plates_near(conn: Connection, plate: str, tolerance: int) -> list[str]:
    folded = fold(plate)
    if not tolerance:
        return [folded]
    found = conn.execute(
        select(plate_variants.c.folded)
        .where(plate_variants.c.variant.in_(sorted(set(_variants(folded)))))
        .distinct()
        .limit(MAX_CANDIDATES * 4)
    ).scalars()
    near = [(levenshtein(folded, f, tolerance), f) for f in found]
    return [f for d, f in sorted(near) if d <= tolerance][:MAX_CANDIDATES]


def _like(plate: str) -> str:
    """A wildcard plate (``AB*``, ``?B12*``) as a LIKE pattern over folded plates; a
    ``%`` or ``_`` the user typed is matched as itself."""
    parts = []
    for ch in plate.upper():
        if ch == "*":
            parts.append("%")
        elif ch == "?":
            parts.append("_")
        else:
            parts.append(fold(ch).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
    return "".join(parts)


def search_query(conn: Connection, f: Filters) -> Select[Any]:
    q = select(events.c.received_us, events.c.id, events.c.line)
    conds: list[ColumnElement[bool]] = []
    if f.plate:
        if "*" in f.plate or "?" in f.plate:
            if f.plate.strip("*"):
                conds.append(events.c.plate_folded.like(_like(f.plate), escape="\\"))
            else:
                conds.append(events.c.plate_folded.is_not(None))
        else:
            conds.append(events.c.plate_folded.in_(_plates_near(conn, f.plate, f.tolerance)))
    if f.camera:
        conds.append(events.c.camera.in_(f.camera))
    if f.kind:
        conds.append(events.c.kind.in_(f.kind))
    if f.list:
        named = [x for x in f.list if x != "none"]
        cond = events.c.list.in_(named)
        conds.append(or_(cond, events.c.list.is_(None)) if "none" in f.list else cond)
    if f.since_us is not None:
        conds.append(events.c.received_us >= f.since_us)
    if f.until_us is not None:
        conds.append(events.c.received_us < f.until_us)
    if f.cursor is not None:
        us, event_id = f.cursor
        conds.append(
            or_(
                events.c.received_us < us,
                and_(events.c.received_us == us, events.c.id < event_id),
            )
        )
    return q.where(*conds).order_by(events.c.received_us.desc(), events.c.id.desc())


def search(conn: Connection, f: Filters) -> Page:
    """Newest first, ``f.limit`` at most, and the cursor of the page after. A page also
    ends once its lines hold :data:`MAX_PAGE_BYTES` (events with large raw fields):
    the next page starts where it ended."""
    found = conn.execute(search_query(conn, f).limit(f.limit + 1)).all()
    rows: list[Any] = []
    size = 0
    for row in found[: f.limit]:
        size += len(row.line)
        if rows and size > MAX_PAGE_BYTES:
            break
        rows.append(row)
    more = len(found) > len(rows)
    out = with_pictures(conn, [(r.id, r.line) for r in rows])
    cursor = encode_cursor(rows[-1].received_us, rows[-1].id) if more and rows else None
    return Page(out, cursor)


def with_pictures(conn: Connection, found: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The events' JSON lines, with what retention did to their pictures since."""
    out = [orjson.loads(line) for _, line in found]
    if not out:
        return out
    ids = [event_id for event_id, _ in found]
    gone: dict[tuple[str, int], str] = {
        (r.event_id, r.n): r.missing
        for r in conn.execute(
            select(pictures.c.event_id, pictures.c.n, pictures.c.missing).where(
                pictures.c.event_id.in_(ids), pictures.c.missing.is_not(None)
            )
        )
    }
    if gone:
        for event in out:
            for n, image in enumerate(event.get("images") or ()):
                why = gone.get((event["id"], n))
                if why is not None and image.get("missing") is None:
                    image["missing"] = why
    return out


def get_event(conn: Connection, event_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(events.c.id, events.c.line).where(events.c.id == event_id)).first()
    if row is None:
        return None
    return with_pictures(conn, [(row.id, row.line)])[0]


def get_picture(conn: Connection, event_id: str, role: str) -> StoredPicture | None:
    """The event's first picture in that role (``plate``), or its ``n``-th (``2``)."""
    q = select(pictures).where(pictures.c.event_id == event_id)
    by_place = _digits(role) and len(role) < 6
    q = q.where(pictures.c.n == int(role)) if by_place else q.where(pictures.c.role == role)
    row = conn.execute(q.order_by(pictures.c.n).limit(1)).first()
    if row is None:
        return None
    return StoredPicture(row.role, row.path, row.bytes, row.sha256, row.missing, row.origin)


def last_events(conn: Connection, cameras: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each camera's newest stored event (one index lookup per camera)."""
    out: dict[str, dict[str, Any]] = {}
    for camera in cameras:
        row = conn.execute(
            select(events.c.line)
            .where(events.c.camera == camera)
            .order_by(events.c.received_us.desc())
            .limit(1)
        ).first()
        if row is not None:
            out[camera] = orjson.loads(row.line)
    return out


def today_counts(conn: Connection, cameras: Iterable[str], since_us: int) -> dict[str, Any]:
    """Per camera, reads (plate events) and pictures missing since ``since_us`` (the
    start of the local day): one pass over the day's rows by the time index, and the
    small index of missing pictures."""
    out = {camera: {"reads": 0, "pictures_missing": 0} for camera in cameras}
    reads = conn.execute(
        select(events.c.camera, func.count())
        .where(events.c.received_us >= since_us, events.c.kind == "plate")
        .group_by(events.c.camera)
    )
    for camera, n in reads:
        if camera in out:
            out[camera]["reads"] = int(n)
    rows = conn.execute(
        select(events.c.camera, func.count())
        .select_from(pictures.join(events, events.c.id == pictures.c.event_id))
        .where(pictures.c.missing.isnot(None), pictures.c.received_us >= since_us)
        .group_by(events.c.camera)
    )
    for camera, n in rows:
        if camera in out:
            out[camera]["pictures_missing"] = int(n)
    return out


# --------------------------------------------------------------------------- retention


def kept_picture_bytes(conn: Connection, origin: str) -> int:
    total = conn.execute(
        select(func.coalesce(func.sum(pictures.c.bytes), 0)).where(
            pictures.c.origin == origin, pictures.c.missing.is_(None)
        )
    ).scalar_one()
    return int(total)


def oldest_pictures(
    conn: Connection, origin: str, limit: int, before_us: int | None = None
) -> list[Any]:
    q = select(
        pictures.c.event_id, pictures.c.n, pictures.c.path, pictures.c.bytes, pictures.c.received_us
    ).where(pictures.c.origin == origin, pictures.c.missing.is_(None))
    if before_us is not None:
        q = q.where(pictures.c.received_us < before_us)
    return list(conn.execute(q.order_by(pictures.c.received_us).limit(limit)))


def mark_pictures_removed(conn: Connection, keys: Sequence[tuple[str, int]], why: str) -> None:
    for event_id, n in keys:
        conn.execute(
            update(pictures)
            .where(pictures.c.event_id == event_id, pictures.c.n == n)
            .values(missing=why)
        )


def oldest_events(conn: Connection, origin: str, before_us: int, limit: int) -> list[str]:
    return list(
        conn.execute(
            select(events.c.id)
            .where(events.c.origin == origin, events.c.received_us < before_us)
            .order_by(events.c.received_us)
            .limit(limit)
        ).scalars()
    )


def delete_events(conn: Connection, ids: Sequence[str]) -> None:
    conn.execute(delete(pictures).where(pictures.c.event_id.in_(ids)))
    conn.execute(delete(events).where(events.c.id.in_(ids)))


def kept_pictures_of(conn: Connection, ids: Sequence[str]) -> list[Any]:
    return list(
        conn.execute(
            select(pictures.c.event_id, pictures.c.n, pictures.c.path, pictures.c.bytes).where(
                pictures.c.event_id.in_(ids), pictures.c.missing.is_(None)
            )
        )
    )
