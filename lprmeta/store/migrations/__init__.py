"""Alembic migrations of the store's schema (run by :func:`lprmeta.store.db.upgrade`)."""
