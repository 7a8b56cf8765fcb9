"""The audit trail: one row per change, with who, what, when, from and to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.direct import DIRECT
from store.models import Incident, TimelineEntry

SYSTEM_ACTOR = "tocsin"  # the actor of what the scheduler does


# One INSERT per entry, not an ORM object: the change's flush then has the incident's UPDATE alone to
# sort out, and a note (which changes nothing else) needs no flush at all.
_INSERT = insert(TimelineEntry.__table__).execution_options(**DIRECT)  # SQLite: store/direct.py


async def record(
    session: AsyncSession,
    incident: Incident,
    *,
    at: datetime,
    actor: str,
    kind: str,
    before: str | None = None,
    after: str | None = None,
    text: str | None = None,
) -> None:
    await session.execute(
        _INSERT,
        {
            "incident_number": incident.number,
            "at": at,
            "actor": actor,
            "kind": kind,
            "from_value": before,
            "to_value": after,
            "text": text,
        },
    )
