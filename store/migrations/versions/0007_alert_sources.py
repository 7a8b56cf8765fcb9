"""alert sources: one open claim per monitoring alert key; the incidents' alert source and count

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=True),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("noticed_count", sa.Integer(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name=op.f("fk_alert_sources_incident_number_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_sources")),
    )
    op.create_index(
        "ix_alert_sources_open",
        "alert_sources",
        ["source", "key_hash"],
        unique=True,
        sqlite_where=sa.text("released_at IS NULL"),
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.create_index("ix_alert_sources_incident", "alert_sources", ["incident_number"], unique=False)
    # Plain ADD COLUMN (no batch mode): the incidents table is never rebuilt, so its FTS triggers stay.
    op.add_column("incidents", sa.Column("alert_source", sa.String(length=32), nullable=True))
    op.add_column("incidents", sa.Column("alert_count", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("incidents", "alert_count")
    op.drop_column("incidents", "alert_source")
    op.drop_index("ix_alert_sources_incident", table_name="alert_sources")
    op.drop_index("ix_alert_sources_open", table_name="alert_sources")
    op.drop_table("alert_sources")
