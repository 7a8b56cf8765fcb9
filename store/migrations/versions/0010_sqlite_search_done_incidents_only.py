"""SQLite's full-text index holds resolved and closed incidents only, as PostgreSQL's does since 0008

The similar-incident search (run at every declare) only ever wants done incidents. Indexing every
incident made each declare insert into the index, and a storm of incidents with the same words (every
"checkout 502") made each search rank all of them, open ones included, before dropping them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DONE = "('resolved', 'closed')"
ADD = (
    "INSERT INTO incidents_fts(rowid, title, summary) SELECT new.number, new.title, coalesce(new.summary, '')"
)
REMOVE = (
    "INSERT INTO incidents_fts(incidents_fts, rowid, title, summary)"
    " SELECT 'delete', old.number, old.title, coalesce(old.summary, '')"
)
TRIGGERS = [
    f"CREATE TRIGGER incidents_fts_insert AFTER INSERT ON incidents BEGIN {ADD} WHERE new.state IN {DONE}; END",
    f"CREATE TRIGGER incidents_fts_delete AFTER DELETE ON incidents BEGIN {REMOVE} WHERE old.state IN {DONE}; END",
    "CREATE TRIGGER incidents_fts_update AFTER UPDATE OF title, summary, state ON incidents BEGIN"
    f" {REMOVE} WHERE old.state IN {DONE}; {ADD} WHERE new.state IN {DONE}; END",
]
TRIGGERS_0004 = [  # every incident indexed
    f"CREATE TRIGGER incidents_fts_insert AFTER INSERT ON incidents BEGIN {ADD}; END",
    f"CREATE TRIGGER incidents_fts_delete AFTER DELETE ON incidents BEGIN {REMOVE}; END",
    f"CREATE TRIGGER incidents_fts_update AFTER UPDATE OF title, summary ON incidents BEGIN {REMOVE}; {ADD}; END",
]


def _rebuild(triggers: list[str], where: str) -> None:
    for name in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER incidents_fts_{name}")
    op.execute("INSERT INTO incidents_fts(incidents_fts) VALUES ('delete-all')")
    for statement in triggers:
        op.execute(statement)
    op.execute(
        f"INSERT INTO incidents_fts(rowid, title, summary) SELECT number, title, coalesce(summary, '') FROM incidents {where}"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(TRIGGERS, f"WHERE state IN {DONE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(TRIGGERS_0004, "")
