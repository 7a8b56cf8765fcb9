"""on-call schedules: overrides, cover requests, and who a schedule resolved to when a level paged

- `schedule_overrides`: someone on call instead of the rota for a while (`/incident override`, or a
  cover taken); removed ones are kept with who removed them.
- `schedule_covers`: a request for someone to cover a stretch, and who took it.
- `schedule_states`: who was last announced on call of each schedule.
- `incidents.on_call_paged`: per escalation level, the people its schedules resolved to when it paged.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _who(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=32), nullable=nullable)


def upgrade() -> None:
    op.add_column("incidents", sa.Column("on_call_paged", sa.JSON(), nullable=True))
    op.create_table(
        "schedule_overrides",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(length=32), nullable=False),
        _who("user"),
        _when("starts_at"),
        _when("ends_at"),
        _when("created_at"),
        _who("created_by"),
        sa.Column("cover_id", sa.Integer(), nullable=True),
        _when("removed_at", nullable=True),
        _who("removed_by", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_overrides")),
    )
    op.create_index(
        "ix_schedule_overrides_schedule_ends", "schedule_overrides", ["schedule", "ends_at"], unique=False
    )
    op.create_table(
        "schedule_states",
        sa.Column("schedule", sa.String(length=32), nullable=False),
        _who("on_call", nullable=True),
        _when("since"),
        sa.PrimaryKeyConstraint("schedule", name=op.f("pk_schedule_states")),
    )
    op.create_table(
        "schedule_covers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(length=32), nullable=False),
        _when("starts_at"),
        _when("ends_at"),
        _who("requested_by"),
        _when("created_at"),
        _who("covered_by", nullable=True),
        _when("covered_at", nullable=True),
        _when("cancelled_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_covers")),
    )
    op.create_index(
        "ix_schedule_covers_schedule_ends", "schedule_covers", ["schedule", "ends_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_schedule_covers_schedule_ends", table_name="schedule_covers")
    op.drop_table("schedule_covers")
    op.drop_table("schedule_states")
    op.drop_index("ix_schedule_overrides_schedule_ends", table_name="schedule_overrides")
    op.drop_table("schedule_overrides")
    op.drop_column("incidents", "on_call_paged")
