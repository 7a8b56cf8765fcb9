"""Problem records and earlier incidents like this one (the search itself, FTS5 on SQLite and tsvector on
PostgreSQL, is store/dialect.py's)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store import dialect, lookup
from store.change import ProblemLinked
from store.errors import Field, InvalidInput, TooLong
from store.models import Incident
from store.policy import Policy
from store.timeline import record

PROBLEM_MAX = 200
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)


def words(phrase: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(phrase)))[:12]


async def similar(session: AsyncSession, phrase: str, *, limit: int = 5) -> list[Incident]:
    """Past incidents, resolved or closed, whose title or resolution summary share words with `phrase`,
    best match first."""
    terms = words(phrase)
    if not terms:
        return []
    numbers = await dialect.search_done(session, terms, limit=limit)
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
) -> ProblemLinked:
    key = key.strip().strip("<>").split("|", 1)[0]
    if not key:
        raise InvalidInput(
            field=Field.PROBLEM, problem="give the problem's key or URL, e.g. `/incident problem PRB-12`"
        )
    if len(key) > PROBLEM_MAX:
        raise TooLong(field=Field.PROBLEM_KEY, length=len(key), limit=PROBLEM_MAX, text=key)
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
    return ProblemLinked(incident=incident, actor=actor, key=key, before=before)


async def of_problem(session: AsyncSession, key: str, *, limit: int = 50) -> list[Incident]:
    key = key.strip().strip("<>").split("|", 1)[0]
    query = select(Incident).where(Incident.problem_key == key).order_by(Incident.number.desc()).limit(limit)
    return list(await session.scalars(query))
