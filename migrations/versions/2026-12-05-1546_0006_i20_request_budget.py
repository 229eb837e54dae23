"""i20: the Peloton request budget, one row per egress address

Revision ID: i20_request_budget
Revises: 0002_i15a
Create Date: 2026-12-05 15:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db

revision: str = "i20_request_budget"
down_revision: str | None = "0002_i15a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "peloton_budgets",
        sa.Column("egress", sa.String(length=100), nullable=False),
        sa.Column("next_slot_at", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paused_until", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("throttle_streak", sa.Integer(), nullable=False),
        sa.Column("last_throttled_at", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_throttle", sa.Text(), nullable=True),
        sa.Column("throttles", sa.Integer(), nullable=False),
        sa.Column("requests_interactive", sa.Integer(), nullable=False),
        sa.Column("requests_background", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("egress", name=op.f("pk_peloton_budgets")),
    )


def downgrade() -> None:
    op.drop_table("peloton_budgets")
