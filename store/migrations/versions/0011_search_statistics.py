"""PostgreSQL: statistics on the search document, so the similar-incident search is planned for its words

The search keeps the 200 most recent done incidents that match, then ranks them. PostgreSQL ignores the
statistics of partial indexes, so it guessed a few hundred matches for every query: for a word in every
done incident ("incident", "outage") it gathered all 50,000 through the GIN index and sorted them, 27-49
ms per declare. With statistics on the expression it walks the newest incidents instead and stops at 200
(4 ms), and still uses the index for rare words (0.1 ms).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_DOCUMENT = "to_tsvector('english', title || ' ' || coalesce(summary, ''))"


def upgrade() -> None:
    bind = op.get_bind()
    # Statistics on an expression need PostgreSQL 14 or later; before that the search runs as it did.
    if bind.dialect.name == "postgresql" and (bind.dialect.server_version_info or (0,)) >= (14,):
        op.execute(
            f"CREATE STATISTICS IF NOT EXISTS incidents_search_document ON ({PG_DOCUMENT}) FROM incidents"
        )
        op.execute("ANALYZE incidents")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS incidents_search_document")
