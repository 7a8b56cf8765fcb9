"""the outbox's failed messages have an index of their own

/healthz reports how many messages were given up on, on every call. Without an index that count read the
whole outbox, which keeps two weeks of delivered messages: a load balancer polling every few seconds made
every replica scan it again and again. The index holds only the failed rows, so it stays tiny and costs
nothing when a message is delivered.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_failed",
        "outbox",
        ["failed_at"],
        sqlite_where=sa.text("failed_at IS NOT NULL"),
        postgresql_where=sa.text("failed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_failed", table_name="outbox")
