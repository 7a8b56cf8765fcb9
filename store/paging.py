"""A page of an escalation level that names schedules reaches whoever is on call of each when it fires,
overrides included: not whoever was on call when the page was planned, nor when it is read again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from store import overrides, rota
from store.models import Incident
from store.policy import Policy
from store.timeline import SYSTEM_ACTOR, record

PAGED_ON_CALL = "paged_on_call"  # a timeline row: a schedule (before) resolved to a person (after)


async def resolve(
    session: AsyncSession, incident: Incident, *, policy: Policy, level: int, now: datetime
) -> None:
    """Keep on the incident who level `level`'s schedules resolve to now, and record each in the timeline
    (nobody on call is recorded too: the page then reaches only the level's other targets)."""
    levels = policy.escalation_levels
    names = (
        [n for n in levels[level - 1].schedules if n in policy.schedules] if 0 < level <= len(levels) else []
    )
    if not names:
        return
    found = await overrides.of(session, names, now=now)
    paged: list[str] = []
    for name in names:
        shift = rota.on_call(policy.schedules[name], found[name], now)
        if shift.user is not None:
            paged.append(shift.user)
        await record(
            session, incident, at=now, actor=SYSTEM_ACTOR, kind=PAGED_ON_CALL, before=name, after=shift.user
        )
    incident.on_call_paged = {**(incident.on_call_paged or {}), str(level): list(dict.fromkeys(paged))}


def paged(incident: Incident, level: int) -> list[str]:
    """The people level `level`'s schedules resolved to when it last paged this incident."""
    return list((incident.on_call_paged or {}).get(str(level), []))
