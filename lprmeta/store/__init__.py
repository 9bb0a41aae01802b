"""The event history: a database of every event and its pictures, kept tidy.

* :mod:`.schema`: the tables (SQLAlchemy Core), versioned by the Alembic
  migrations in ``migrations/``;
* :mod:`.db`: opening SQLite or PostgreSQL and upgrading the schema in place;
* :mod:`.queries`: writes and searches as functions of a connection (the API
  and ``lprmeta events`` share them);
* :mod:`.sink`: the bus consumer that writes, spools while the database is
  away, and runs retention.
"""
