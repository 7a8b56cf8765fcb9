"""closure: who confirmed that service is restored, and when

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN: the SQLite full-text triggers hang off the incidents table, so it is never rebuilt.
    op.add_column("incidents", sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("incidents", sa.Column("confirmed_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_column("confirmed_by")
        batch_op.drop_column("confirmed_at")
