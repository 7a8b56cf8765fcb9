"""timers and SLA clocks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "timers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_number"], ["incidents.number"], name=op.f("fk_timers_incident_number_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timers")),
    )
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_timers_due",
            ["due_at"],
            unique=False,
            sqlite_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
        )
        batch_op.create_index(
            "ix_timers_incident_pending",
            ["incident_number"],
            unique=False,
            sqlite_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("response_warned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("response_breached_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolution_warned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolution_breached_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("resolution_paused_seconds", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("level_paged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_page_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("active_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_nudge_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_pir_reminder_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("last_pir_reminder_at")
        batch_op.drop_column("last_nudge_at")
        batch_op.drop_column("active_since")
        batch_op.drop_column("last_page_at")
        batch_op.drop_column("level_paged_at")
        batch_op.drop_column("resolution_paused_seconds")
        batch_op.drop_column("resolution_breached_at")
        batch_op.drop_column("resolution_warned_at")
        batch_op.drop_column("response_breached_at")
        batch_op.drop_column("response_warned_at")

    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_timers_incident_pending",
            sqlite_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_timers_due",
            sqlite_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
        )

    op.drop_table("timers")
