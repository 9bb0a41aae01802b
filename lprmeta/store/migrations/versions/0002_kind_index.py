"""An index for searches by kind (``kind=counting`` over months of plates).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("events_kind", "events", ["kind", "received_us"])


def downgrade() -> None:
    op.drop_index("events_kind", "events")
