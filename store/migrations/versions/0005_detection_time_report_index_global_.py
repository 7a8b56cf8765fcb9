"""detection time, report index, global timers

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # add_column and create_index only: the incidents table is not rebuilt, so its FTS triggers stay.
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detected_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_incidents_declared_at", ["declared_at"], unique=False)

    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.alter_column("incident_number", existing_type=sa.INTEGER(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.alter_column("incident_number", existing_type=sa.INTEGER(), nullable=False)

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_declared_at")
        batch_op.drop_column("detected_at")
