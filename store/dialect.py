"""The SQL that differs between SQLite and PostgreSQL, in one place.

Use cases stay engine-blind: they ask this module for an insert-or-ignore, a span of time in seconds, a
UTC day or a full-text search, and it answers for the session's engine. Nothing here imports a driver.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, and_, column, func, literal_column, select, table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from store.models import State


def is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def insert_or_ignore(
    session: AsyncSession, table: Any, values: dict[str, Any], *, unique: list[str], where: Any
) -> Any:
    """INSERT `values` unless a row with the same `unique` columns (within the partial index `where`)
    exists: ON CONFLICT DO NOTHING, in either engine's spelling."""
    insert = sqlite.insert if is_sqlite(session) else postgresql.insert
    return insert(table).values(**values).on_conflict_do_nothing(index_elements=unique, index_where=where)


def seconds_between(session: AsyncSession, later: Any, earlier: Any) -> ColumnElement[Any]:
    """`later - earlier` in seconds (NULL if either is)."""
    if is_sqlite(session):
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def utc_day(session: AsyncSession, moment: Any) -> ColumnElement[str]:
    """The UTC date of `moment` as YYYY-MM-DD (SQLite keeps times as UTC text already)."""
    if is_sqlite(session):
        return func.date(moment)
    return func.to_char(func.timezone("UTC", moment), "YYYY-MM-DD")


CANDIDATES = 200  # a search ranks at most this many recent matches
PG_DOCUMENT = "to_tsvector('english', title || ' ' || coalesce(summary, ''))"  # migration 0011's index
_DONE = (State.RESOLVED.value, State.CLOSED.value)

# Each ranks only the most recent CANDIDATES matches, so that a common word ("outage") does not rank every
# done incident ever. The states are literals so that the planner may use the partial indexes over done
# incidents (SQLite's FTS table holds done incidents only, migration 0010; the state is checked again).
_SQLITE_SIMILAR = text(
    "SELECT recent.number FROM (SELECT rowid AS number, bm25(incidents_fts) AS rank FROM incidents_fts"
    f" WHERE incidents_fts MATCH :match ORDER BY rowid DESC LIMIT {CANDIDATES}) AS recent"
    " JOIN incidents ON incidents.number = recent.number"
    f" WHERE incidents.state IN ('{_DONE[0]}', '{_DONE[1]}')"
    " ORDER BY recent.rank, recent.number DESC LIMIT :limit"
).columns(column("number", Integer))
_PG_SIMILAR = text(
    f"SELECT number FROM (SELECT number, title, summary FROM incidents"
    f" WHERE {PG_DOCUMENT} @@ to_tsquery('english', :query)"
    f" AND state IN ('{_DONE[0]}', '{_DONE[1]}')"
    f" ORDER BY number DESC LIMIT {CANDIDATES}) AS recent"
    f" ORDER BY ts_rank({PG_DOCUMENT}, to_tsquery('english', :query)) DESC, number DESC LIMIT :limit"
).columns(column("number", Integer))


async def search_done(session: AsyncSession, terms: list[str], *, limit: int) -> list[int]:
    """Numbers of resolved or closed incidents whose title or summary has any of `terms` (words, as
    store/knowledge.py splits them), best match first."""
    if is_sqlite(session):
        match = " OR ".join(f'"{term}"' for term in terms)
        result = await session.execute(_SQLITE_SIMILAR, {"match": match, "limit": limit})
    else:
        result = await session.execute(_PG_SIMILAR, {"query": " | ".join(terms), "limit": limit})
    return [row[0] for row in result]


def matches_done(session: AsyncSession, terms: list[str]) -> ColumnElement[bool]:
    """Resolved or closed incidents whose title or resolution summary has every one of `terms` (words, as
    store/knowledge.py splits them), for a WHERE clause; no other incident matches, since the full-text
    indexes hold only these (migrations 0008 and 0010). The states are literals, as in the search above."""
    done = text(f"incidents.state IN ('{_DONE[0]}', '{_DONE[1]}')")
    if is_sqlite(session):
        match = " ".join(f'"{term}"' for term in terms)
        indexed: Select[Any] = (
            select(literal_column("rowid"))
            .select_from(table("incidents_fts"))
            .where(literal_column("incidents_fts").bool_op("MATCH")(match))
        )
        return and_(done, literal_column("incidents.number").in_(indexed))
    query = func.to_tsquery(literal_column("'english'"), " & ".join(terms))
    return and_(done, literal_column(PG_DOCUMENT).bool_op("@@")(query))
