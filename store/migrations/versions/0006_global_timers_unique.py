"""global timers are unique per kind and moment

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_timers_global",
        "timers",
        ["kind", "key"],
        unique=True,
        sqlite_where=sa.text("incident_number IS NULL"),
        postgresql_where=sa.text("incident_number IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_timers_global", table_name="timers")
