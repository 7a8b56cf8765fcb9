"""incidents remember their confirmation prompt and the topic last asked of their channel

`confirmation_ts` is the "Confirm restored / Still broken" prompt of the current resolution, so that it
can be edited to say what happened once the incident leaves `resolved`. `topic` is the channel topic
Tocsin last asked for, so that a topic is set only when its text changes (conversations.setTopic is a
Tier 2 method, about 20 calls a minute).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN: the SQLite full-text triggers hang off the incidents table, so it is never rebuilt.
    op.add_column("incidents", sa.Column("confirmation_ts", sa.String(length=32), nullable=True))
    op.add_column("incidents", sa.Column("topic", sa.String(length=250), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_column("topic")
        batch_op.drop_column("confirmation_ts")
