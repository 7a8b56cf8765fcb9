"""timeline entries can hold a message captured from the incident channel, be edited and be removed;
who opened the App Home tab

- `occurred_at`, `message_ts`, `message_channel`, `permalink`, `files`: the captured message (its own
  time, where it is, its file names); one entry per message and incident.
- `marks`: the reactions and the pin that capture it; the entry goes when the last one does.
- `edited_at`, `removed_at`: the entry as shown was edited or taken off the timeline (the change is a
  row of its own, holding the original).
- `home_views`: users who opened the Home tab, refreshed for them when what it shows changes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("occurred_at", sa.DateTime(timezone=True)),
    ("message_ts", sa.String(length=32)),
    ("message_channel", sa.String(length=32)),
    ("permalink", sa.Text()),
    ("files", sa.JSON()),
    ("marks", sa.JSON()),
    ("edited_at", sa.DateTime(timezone=True)),
    ("removed_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Plain ADD COLUMNs and a unique index, not a table constraint: SQLite adds them in place.
    for name, kind in COLUMNS:
        op.add_column("timeline", sa.Column(name, kind, nullable=True))
    op.create_index("uq_timeline_message", "timeline", ["incident_number", "message_ts"], unique=True)
    op.create_table(
        "home_views",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_home_views")),
    )
    op.create_index(op.f("ix_home_views_opened_at"), "home_views", ["opened_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_home_views_opened_at"), table_name="home_views")
    op.drop_table("home_views")
    op.drop_index("uq_timeline_message", table_name="timeline")
    for name, _ in reversed(COLUMNS):
        op.drop_column("timeline", name)
