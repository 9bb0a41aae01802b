"""The store's tables, in SQLAlchemy Core: one module, read by the migrations too.

* ``events``: one row per event. Every field one filters on is a column (the
  folded plate for look-alike search); the whole JSON line is kept in ``line``,
  so nothing the camera sent is lost to the schema. ``received_us`` (when
  lprmeta received the read, microseconds since the epoch) orders and pages
  results: a camera's own clock drifts and can be reset, lprmeta's does not
  jump back; the camera's time is kept in ``time``.
* ``pictures``: one row per picture of an event (``n`` its place in the event's
  list of images), with the file's path, size and sha256. ``missing`` says why
  there is no file (never saved, or removed by retention). ``origin`` names the
  daemon whose disk holds the file: with several daemons on one PostgreSQL,
  each cleans up only its own disk.
* ``plate_variants``: the deletion neighbourhood (SymSpell) of every folded
  plate seen, the plate itself and each form with one character deleted. A
  search with tolerance 1 looks up the query's own neighbourhood there, then
  the events of the few plates found: an index lookup, not a scan of history.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = ["events", "metadata", "pictures", "plate_variants"]

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("received_us", BigInteger, nullable=False),
    Column("received", String(40), nullable=False),
    Column("time", String(40)),
    Column("camera", String(128), nullable=False),
    Column("source", String(16), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("plate", String(64)),
    Column("plate_folded", String(64)),
    Column("list", String(16)),
    Column("direction", String(16)),
    Column("confidence", Float),
    Column("country", String(64)),
    Column("origin", String(128), nullable=False),
    Column("line", Text, nullable=False),
)
Index("events_received", events.c.received_us, events.c.id)
Index("events_camera", events.c.camera, events.c.received_us)
Index("events_plate", events.c.plate_folded, events.c.received_us)
Index("events_list", events.c.list, events.c.received_us)
Index("events_kind", events.c.kind, events.c.received_us)

pictures = Table(
    "pictures",
    metadata,
    Column("event_id", String(64), nullable=False),
    Column("n", Integer, nullable=False),
    Column("role", String(64), nullable=False),
    Column("path", Text),
    Column("bytes", BigInteger),
    Column("sha256", String(64)),
    Column("missing", Text),
    Column("received_us", BigInteger, nullable=False),
    Column("origin", String(128), nullable=False),
    PrimaryKeyConstraint("event_id", "n"),
)
# The pictures retention may still remove, oldest first, per daemon.
Index(
    "pictures_kept",
    pictures.c.origin,
    pictures.c.received_us,
    sqlite_where=pictures.c.missing.is_(None),
    postgresql_where=pictures.c.missing.is_(None),
)
# The pictures a camera did not deliver, by when (the cameras page counts today's).
Index(
    "pictures_missing",
    pictures.c.received_us,
    sqlite_where=pictures.c.missing.isnot(None),
    postgresql_where=pictures.c.missing.isnot(None),
)

plate_variants = Table(
    "plate_variants",
    metadata,
    Column("variant", String(64), nullable=False),
    Column("folded", String(64), nullable=False),
    PrimaryKeyConstraint("variant", "folded"),
)
