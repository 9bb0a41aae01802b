"""Opening the store's database and bringing its schema up to date.

SQLite (the default, a file in the data directory, no server) runs in WAL mode:
readers (the API, ``lprmeta events``) never wait for the writer, and a commit
survives the process being killed (``synchronous=NORMAL``: what a power cut can
take is the last commits, never the file). PostgreSQL is reached through
psycopg 3. The schema is versioned with Alembic; :func:`upgrade` runs whatever
migrations the database lacks, under an advisory lock on PostgreSQL so that
several daemons starting together migrate once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event

from ..config import StoreConfig
from ..errors import SchemaError, StoreUnavailable

__all__ = ["SchemaError", "StoreUnavailable", "engine_url", "open_engine", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK = 0x6C70726D  # "lprm": the advisory lock migrations take on PostgreSQL


def engine_url(cfg: StoreConfig) -> str:
    if cfg.url is None:
        return f"sqlite:///{cfg.sqlite_path.resolve()}"
    url = cfg.url.get()
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=2000")
    cur.execute("PRAGMA foreign_keys=OFF")
    cur.close()


def open_engine(cfg: StoreConfig, *, pool_size: int = 4) -> Engine:
    """An engine for the configured database (nothing is connected yet)."""
    url = engine_url(cfg)
    if url.startswith("sqlite"):
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, pool_size=pool_size, max_overflow=4, connect_args={"timeout": 2.0}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=4,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5, "application_name": "lprmeta"},
    )


def _alembic() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    rev = ScriptDirectory.from_config(_alembic()).get_current_head()
    assert rev is not None
    return rev


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, target: str = "head") -> str | None:
    """Run the migrations the database lacks (up to ``target``, the newest by default);
    returns the revision it was at before."""
    script = ScriptDirectory.from_config(_alembic())
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        before = MigrationContext.configure(conn).get_current_revision()
        if before is not None and before not in {s.revision for s in script.walk_revisions()}:
            raise SchemaError(
                f"the database is at schema revision {before!r}, which this lprmeta does not "
                "know (written by a newer lprmeta?); upgrade lprmeta"
            )
        if before != (script.get_current_head() if target == "head" else target):
            cfg = _alembic()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
    return before
