"""Alembic's environment: lprmeta runs migrations itself, on the connection it opened
(:func:`lprmeta.store.db.upgrade` puts it in ``config.attributes["connection"]``)."""

from __future__ import annotations

from alembic import context

from lprmeta.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
