"""incidents can be kept off the status page; indexes for the web view's lists

- `status_hidden`: the commander kept the incident off the stakeholders' status page
  (`/incident statuspage hide`); every incident before this revision is shown.
- The incident list filtered by priority or category reads the newest first through an index of its
  own, and counts them without reading the table; the knowledge base reads the most recently resolved
  first (store/browse.py).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_incidents_priority_declared_at", ["priority", "declared_at"]),
    ("ix_incidents_category_declared_at", ["category", "declared_at"]),
    ("ix_incidents_resolved_at", ["resolved_at"]),
)


def upgrade() -> None:
    # Plain ADD COLUMN: the SQLite full-text triggers hang off the incidents table, so it is never rebuilt.
    op.add_column(
        "incidents", sa.Column("status_hidden", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    for name, columns in INDEXES:
        op.create_index(name, "incidents", columns, unique=False)


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="incidents")
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_column("status_hidden")
