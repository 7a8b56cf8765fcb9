"""action items, problems, PIR meetings, similar incidents

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "action_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=32), nullable=True),
        sa.Column("last_reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_number"], ["incidents.number"], name=op.f("fk_action_items_incident_number_incidents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_items")),
        sa.UniqueConstraint("incident_number", "number", name=op.f("uq_action_items_incident_number")),
    )
    with op.batch_alter_table("action_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_action_items_owner_open",
            ["owner"],
            unique=False,
            sqlite_where=sa.text("done_at IS NULL"),
            postgresql_where=sa.text("done_at IS NULL"),
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pir_meeting_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("pir_meeting_reminded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("problem_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("similar", sa.JSON(), nullable=True))

    # Full-text search over past incidents' titles and resolution summaries (`/incident similar`).
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute(f"CREATE INDEX ix_incidents_search ON incidents USING gin ({PG_DOCUMENT})")


PG_DOCUMENT = "to_tsvector('english', title || ' ' || coalesce(summary, ''))"
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE incidents_fts USING fts5(title, summary, content='incidents', content_rowid='number')",
    "CREATE TRIGGER incidents_fts_insert AFTER INSERT ON incidents BEGIN"
    " INSERT INTO incidents_fts(rowid, title, summary) VALUES (new.number, new.title, coalesce(new.summary, '')); END",
    "CREATE TRIGGER incidents_fts_delete AFTER DELETE ON incidents BEGIN"
    " INSERT INTO incidents_fts(incidents_fts, rowid, title, summary)"
    " VALUES ('delete', old.number, old.title, coalesce(old.summary, '')); END",
    "CREATE TRIGGER incidents_fts_update AFTER UPDATE OF title, summary ON incidents BEGIN"
    " INSERT INTO incidents_fts(incidents_fts, rowid, title, summary)"
    " VALUES ('delete', old.number, old.title, coalesce(old.summary, ''));"
    " INSERT INTO incidents_fts(rowid, title, summary) VALUES (new.number, new.title, coalesce(new.summary, '')); END",
    "INSERT INTO incidents_fts(rowid, title, summary) SELECT number, title, coalesce(summary, '') FROM incidents",
]


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER incidents_fts_{name}")
        op.execute("DROP TABLE incidents_fts")
    else:
        op.execute("DROP INDEX ix_incidents_search")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("similar")
        batch_op.drop_column("problem_key")
        batch_op.drop_column("pir_meeting_reminded_at")
        batch_op.drop_column("pir_meeting_at")

    with op.batch_alter_table("action_items", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_action_items_owner_open",
            sqlite_where=sa.text("done_at IS NULL"),
            postgresql_where=sa.text("done_at IS NULL"),
        )

    op.drop_table("action_items")
