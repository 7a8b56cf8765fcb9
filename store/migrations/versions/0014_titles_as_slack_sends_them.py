"""incident titles are kept as Slack encodes them, so PostgreSQL's column is wider than the limit

A title's limit (150) counts what a person reads; it is kept as Slack sends it, where `R&D` is `R&amp;D`
and `@carol` is `<@U0CAROL|carol>`, so the stored form can be longer (store/service.py caps it at 800).
SQLite does not enforce a VARCHAR's length, so its column is left as it is rather than rebuilding the
table its full-text triggers hang off.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # widening a varchar rewrites no rows
        op.alter_column(
            "incidents", "title", type_=sa.String(length=800), existing_type=sa.String(length=150)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE incidents SET title = left(title, 150) WHERE length(title) > 150")
        op.alter_column(
            "incidents", "title", type_=sa.String(length=150), existing_type=sa.String(length=800)
        )
