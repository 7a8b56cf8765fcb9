"""outbox rows carry an urgency, a lane, what they need and provide, and their Slack quota bucket;
incidents remember a digest of the card and the announcement as last delivered

- `urgency`: lower goes first across incidents (store/operations.py `route`).
- `lane`: order is kept among an incident's rows of one lane only; rows queued before this revision
  share the lane `main`, so they keep the strict order they were queued in.
- `needs` / `provides`: a row that needs the incident's channel, card or announcement waits until no
  earlier row of its incident that provides it is pending.
- `bucket`: the Web API quota the row's main call spends (the relay claims only what Slack will accept
  soon).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "delivered_at IS NULL AND failed_at IS NULL"


def upgrade() -> None:
    # Plain ADD COLUMNs: SQLite adds them in place, without rebuilding the tables (the incidents table's
    # full-text triggers would not survive a rebuild).
    op.add_column("outbox", sa.Column("urgency", sa.Integer(), nullable=False, server_default="9"))
    op.add_column("outbox", sa.Column("lane", sa.String(length=64), nullable=False, server_default="main"))
    op.add_column("outbox", sa.Column("needs", sa.String(length=16), nullable=True))
    op.add_column("outbox", sa.Column("provides", sa.String(length=16), nullable=True))
    op.add_column("outbox", sa.Column("bucket", sa.String(length=96), nullable=True))
    op.create_index(
        "ix_outbox_ready",
        "outbox",
        ["urgency", "id"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )
    op.create_index(
        "ix_outbox_lane",
        "outbox",
        ["incident_number", "lane", "id"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )
    op.create_index(
        "ix_outbox_provides",
        "outbox",
        ["incident_number", "provides", "id"],
        sqlite_where=sa.text(f"{PENDING} AND provides IS NOT NULL"),
        postgresql_where=sa.text(f"{PENDING} AND provides IS NOT NULL"),
    )
    op.add_column("incidents", sa.Column("card_digest", sa.String(length=64), nullable=True))
    op.add_column("incidents", sa.Column("announcement_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("announcement_digest")
        batch.drop_column("card_digest")
    op.drop_index("ix_outbox_provides", table_name="outbox")
    op.drop_index("ix_outbox_lane", table_name="outbox")
    op.drop_index("ix_outbox_ready", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        for column in ("bucket", "provides", "needs", "lane", "urgency"):
            batch.drop_column(column)
