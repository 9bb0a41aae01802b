"""The first schema: events, pictures, plate variants.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("received_us", sa.BigInteger, nullable=False),
        sa.Column("received", sa.String(40), nullable=False),
        sa.Column("time", sa.String(40)),
        sa.Column("camera", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("plate", sa.String(64)),
        sa.Column("plate_folded", sa.String(64)),
        sa.Column("list", sa.String(16)),
        sa.Column("direction", sa.String(16)),
        sa.Column("confidence", sa.Float),
        sa.Column("country", sa.String(64)),
        sa.Column("origin", sa.String(128), nullable=False),
        sa.Column("line", sa.Text, nullable=False),
    )
    op.create_index("events_received", "events", ["received_us", "id"])
    op.create_index("events_camera", "events", ["camera", "received_us"])
    op.create_index("events_plate", "events", ["plate_folded", "received_us"])
    op.create_index("events_list", "events", ["list", "received_us"])
    op.create_table(
        "pictures",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        sa.Column("missing", sa.Text),
        sa.Column("received_us", sa.BigInteger, nullable=False),
        sa.Column("origin", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "n"),
    )
    kept = sa.text("missing IS NULL")
    op.create_index(
        "pictures_kept",
        "pictures",
        ["origin", "received_us"],
        sqlite_where=kept,
        postgresql_where=kept,
    )
    op.create_table(
        "plate_variants",
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("folded", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("variant", "folded"),
    )


def downgrade() -> None:
    op.drop_table("plate_variants")
    op.drop_table("pictures")
    op.drop_table("events")
