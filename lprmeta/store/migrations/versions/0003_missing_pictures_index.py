"""An index of the pictures a camera did not deliver, by when (the cameras page counts
today's; a handful a day, so the index stays small however many pictures are kept).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    missing = sa.text("missing IS NOT NULL")
    op.create_index(
        "pictures_missing",
        "pictures",
        ["received_us"],
        sqlite_where=missing,
        postgresql_where=missing,
    )


def downgrade() -> None:
    op.drop_index("pictures_missing", "pictures")
