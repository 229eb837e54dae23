"""i19a: workouts.origin, accounts.include_external, sent_workouts (no loops, no resends)

Revision ID: i19a_origin
Revises: i20_request_budget
Create Date: 2026-12-05 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db

revision: str = "i19a_origin"
down_revision: str | None = "i20_request_budget"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("include_external", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Workouts stored before this revision count as Peloton's: their deliveries exist already.
    with op.batch_alter_table("workouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=40), nullable=True))
    op.create_table(
        "sent_workouts",
        sa.Column("peloton_workout_id", sa.String(length=64), nullable=False),
        sa.Column("destination_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=False),
        sa.Column("delivered_at", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["destinations.id"],
            name=op.f("fk_sent_workouts_destination_id_destinations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "peloton_workout_id", "destination_id", "format", name=op.f("pk_sent_workouts")
        ),
    )


def downgrade() -> None:
    op.drop_table("sent_workouts")
    with op.batch_alter_table("workouts", schema=None) as batch_op:
        batch_op.drop_column("origin")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("include_external")
