"""Problem records and earlier incidents like this one (full-text search: FTS5 on SQLite, tsvector on
PostgreSQL)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from store import lookup, pg
from store.change import Change
from store.db import plan_afresh
from store.direct import DIRECT
from store.errors import InvalidInput, TooLong
from store.models import Incident, State
from store.policy import Policy
from store.timeline import record

PROBLEM_MAX = 200
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)
PG_DOCUMENT = "to_tsvector('english', title || ' ' || coalesce(summary, ''))"
CANDIDATES = 200  # the search ranks at most this many recent matches
_DONE = (State.RESOLVED.value, State.CLOSED.value)
# PostgreSQL plans the search for each query's words (migration 0011's statistics): a word every done
# incident has walks the newest incidents, a rare one uses the index. So a declare's transaction asks for a
# custom plan for the search: a prepared statement's generic plan, chosen after five runs, always
# took the index, 45-52 ms for a common word.
# Both built once and marked (store/direct.py): the search runs on the driver's connection, as the
# statements every request makes do. Each ranks only the most recent CANDIDATES matches: on SQLite, ranking
# every match of a common word ("incident", "outage") among 50,000 done incidents took 140-165 ms, on the
# loop's thread, in every declare; the most recent 200 take 3-6 ms. SQLite's index holds done incidents only
# (migration 0010); the state is checked again all the same.
_SQLITE_SIMILAR = (
    text(
        "SELECT recent.number FROM (SELECT rowid AS number, bm25(incidents_fts) AS rank FROM incidents_fts"
        f" WHERE incidents_fts MATCH :match ORDER BY rowid DESC LIMIT {CANDIDATES}) AS recent"
        " JOIN incidents ON incidents.number = recent.number"
        f" WHERE incidents.state IN ('{_DONE[0]}', '{_DONE[1]}')"
        " ORDER BY recent.rank, recent.number DESC LIMIT :limit"
    )
    .columns(column("number", Integer))
    .execution_options(**DIRECT)
)
# The states are literals so the planner can use the partial index over done incidents; ranking
# recomputes each candidate's tsvector, so only the most recent CANDIDATES matches are ranked.
_PG_SIMILAR = (
    text(
        f"SELECT number FROM (SELECT number, title, summary FROM incidents"
        f" WHERE {PG_DOCUMENT} @@ to_tsquery('english', :query)"
        f" AND state IN ('{_DONE[0]}', '{_DONE[1]}')"
        f" ORDER BY number DESC LIMIT {CANDIDATES}) AS recent"
        f" ORDER BY ts_rank({PG_DOCUMENT}, to_tsquery('english', :query)) DESC, number DESC LIMIT :limit"
    )
    .columns(column("number", Integer))
    .execution_options(**DIRECT)
)


def words(phrase: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(phrase)))[:12]


async def similar(session: AsyncSession, phrase: str, *, limit: int = 5) -> list[Incident]:
    """Past incidents, resolved or closed, whose title or resolution summary share words with `phrase`,
    best match first."""
    terms = words(phrase)
    if not terms:
        return []
    if session.bind.dialect.name == "sqlite":
        statement = _SQLITE_SIMILAR
        params: dict[str, Any] = {"match": " OR ".join(f'"{term}"' for term in terms), "limit": limit}
    else:
        statement, params = _PG_SIMILAR, {"query": " | ".join(terms), "limit": limit}
    afresh = isinstance(session, pg.Session)  # a write transaction (declare): plan for these words, once
    if afresh:
        await plan_afresh(session)  # type: ignore[arg-type]
    numbers = [row[0] for row in await session.execute(statement, params)]
    if afresh:  # the rest of the transaction keeps its cached plans: planning each later INSERT afresh
        await session.set_local("plan_cache_mode", "DEFAULT")  # doubled PostgreSQL's CPU per declare
    if not numbers:
        return []
    found = await lookup.by_numbers(session, numbers)
    return [found[n] for n in numbers if n in found]


def summary_of(incident: Incident, *, policy: Policy) -> dict[str, Any]:
    return {
        "id": policy.public_id(incident.number),
        "title": incident.title,
        "cause": incident.cause_code,
        "resolution": incident.resolution_code,
        "summary": (incident.summary or "")[:200],
    }


async def link_problem(
    session: AsyncSession, incident: Incident, key: str, *, policy: Policy, actor: str, now: datetime
) -> str:
    key = key.strip().strip("<>").split("|", 1)[0]
    if not key:
        raise InvalidInput(
            field="problem", problem="give the problem's key or URL, e.g. `/incident problem PRB-12`"
        )
    if len(key) > PROBLEM_MAX:
        raise TooLong(field="problem key", length=len(key), limit=PROBLEM_MAX, text=key)
    before = incident.problem_key
    incident.problem_key = key
    await record(
        session,
        incident,
        at=now,
        actor=actor,
        kind="problem",
        before=(before or "")[:64] or None,
        after=key[:64],
        text=key,
    )
    await session.flush()
    return Change(incident=incident, kind="problem", actor=actor, before=before, after=key, text=key)


async def of_problem(session: AsyncSession, key: str, *, limit: int = 50) -> list[Incident]:
    key = key.strip().strip("<>").split("|", 1)[0]
    query = select(Incident).where(Incident.problem_key == key).order_by(Incident.number.desc()).limit(limit)
    return list(await session.scalars(query))
