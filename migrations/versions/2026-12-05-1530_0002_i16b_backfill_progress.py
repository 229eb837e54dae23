"""i16b: backfill progress on accounts (workouts found so far, how far back it reached)

Revision ID: 0002_i16b
Revises: 0001
Create Date: 2026-12-05 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db

revision: str = "0002_i16b"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("backfill_found", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("backfill_reached", service.db.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("backfill_reached")
        batch_op.drop_column("backfill_found")
