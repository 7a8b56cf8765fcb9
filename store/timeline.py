"""The audit trail: one row per change, with who, what, when, from and to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Incident, TimelineEntry, table_of

SYSTEM_ACTOR = "tocsin"  # the actor of what the scheduler does


# One Core INSERT per entry, not an ORM object: nobody reads the entry back in the same transaction.
_INSERT = insert(table_of(TimelineEntry))


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
