"""Closure: the reporter confirms that service is restored (or says it is still broken), codes are
corrected after the fact, and a resolved incident closes by itself once `closure.auto_close_after` has
passed, unless its review is still owed or, with `closure.require_confirmation`, nobody has confirmed.

Who may confirm or say "still broken": the reporter, the commander or an admin. A confirmation closes
the incident at once when its post-incident review is not required or is done."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from store import service, timers
from store.change import Closed, Confirmed, Recoded, StateChanged
from store.errors import AlreadyConfirmed, Field, Forbidden, InvalidInput, StalePrompt
from store.machine import Action
from store.models import Incident, State
from store.policy import Policy
from store.timeline import SYSTEM_ACTOR, record

STILL_BROKEN = "reporter says still broken"
RESOLVED = frozenset({State.RESOLVED})
CODED_STATES = frozenset({State.RESOLVED, State.CLOSED})


def asks_reporter(incident: Incident) -> bool:
    """Whether there is a person to ask: not for incidents that monitoring opened."""
    return incident.alert_source is None and incident.reporter[:1] in ("U", "W")


def resolution(incident: Incident) -> int:
    """Which resolution of the incident this is, or would be: 1 for the first, one more after each reopen.
    A confirmation prompt carries it, so a click on the prompt of an earlier resolution is refused."""
    return (incident.reopen_count or 0) + 1


def _require_current_prompt(incident: Incident, prompt: int | None, policy: Policy) -> None:
    """A click on a prompt (`prompt`: the resolution it was posted for) counts only while the incident is
    still in that resolution and nobody has answered it; a typed command (None) needs no prompt."""
    if prompt is None:
        return
    current = incident.state is State.RESOLVED and prompt == resolution(incident)
    if current and incident.confirmed_at is None:
        return
    raise StalePrompt(
        incident_id=policy.public_id(incident.number),
        state=incident.state.value,
        prompt=prompt,
        resolution=resolution(incident),
        confirmed_by=incident.confirmed_by if current else None,
    )


def _require_reporter(incident: Incident, action: str, actor: str, policy: Policy) -> None:
    reporter = incident.reporter if asks_reporter(incident) else None
    if actor in (reporter, incident.commander) or policy.is_admin(actor):
        return
    raise Forbidden(
        incident_id=policy.public_id(incident.number),
        action=action,
        commander=incident.commander,
        admins=sorted(policy.admins),
        owner=reporter,
        owner_role="reporter",
    )


async def confirm(
    session: AsyncSession,
    incident: Incident,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
    prompt: int | None = None,
) -> Confirmed:
    """Record that service is restored; close at once unless the review is still owed. `prompt`: the
    resolution whose prompt was clicked (None when typed)."""
    _require_current_prompt(incident, prompt, policy)
    service.require_state(incident, RESOLVED, "confirm", policy)
    _require_reporter(incident, "confirm", actor, policy)
    if incident.confirmed_at is not None:
        raise AlreadyConfirmed(
            policy.public_id(incident.number), incident.confirmed_by, incident.confirmed_at
        )
    incident.confirmed_at, incident.confirmed_by = now, actor
    await record(session, incident, at=now, actor=actor, kind="confirmed", after="restored")
    if timers.review_owed(incident, policy):
        await timers.replan(session, incident, policy=policy, now=now)
        waiting = "its post-incident review is required and not done yet (`pir done <link>`)"
        return Confirmed(incident=incident, actor=actor, waiting=waiting)
    closed = await service.apply(
        session, incident, Action.CLOSE, policy=policy, actor=actor, now=now, permitted=True
    )
    then = replace(_closed(closed), auto=False, reason="service confirmed restored")
    return Confirmed(incident=incident, actor=actor, then=then)


async def still_broken(
    session: AsyncSession,
    incident: Incident,
    reason: str,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
    prompt: int | None = None,
) -> StateChanged:
    """Reopen, as a reopen like any other, with the reason the reporter gave. `prompt` as for confirm."""
    _require_current_prompt(incident, prompt, policy)
    service.require_state(incident, RESOLVED, "still-broken", policy)
    _require_reporter(incident, "say it is still broken", actor, policy)
    text = f"{STILL_BROKEN}: {reason.strip()}" if reason.strip() else STILL_BROKEN
    return await service.apply(
        session, incident, Action.REOPEN, policy=policy, actor=actor, now=now, reason=text, permitted=True
    )


async def close_by_itself(
    session: AsyncSession, incident: Incident, *, policy: Policy, now: datetime
) -> Closed:
    """The auto-close timer fell due (timers.fire checked it still applies)."""
    after = policy.auto_close_after or timedelta(0)
    reason = f"resolved more than {_words(after)} ago" + (
        ", and confirmed restored" if incident.confirmed_at else ""
    )
    closed = await service.apply(
        session, incident, Action.CLOSE, policy=policy, actor=SYSTEM_ACTOR, now=now, permitted=True
    )
    return replace(_closed(closed), auto=True, reason=reason)


async def recode(
    session: AsyncSession,
    incident: Incident,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
    cause: str | None,
    resolution: str | None,
) -> Recoded:
    """Correct the cause and resolution codes of a resolved or closed incident."""
    public_id = policy.public_id(incident.number)
    service.require_state(incident, CODED_STATES, "recode", policy)
    service.require_commander(incident, "recode", actor, policy)
    if not cause and not resolution:
        raise InvalidInput(
            field=Field.RECODE,
            problem="usage: `/incident recode cause=<code> resolution=<code>` (either or both)",
        )
    cause_before, resolution_before = incident.cause_code, incident.resolution_code
    if cause:
        incident.cause_code = service.choose(Field.CAUSE_CODE, cause, policy.cause_codes)
    if resolution:
        incident.resolution_code = service.choose(Field.RESOLUTION_CODE, resolution, policy.resolution_codes)
    before = f"{cause_before}/{resolution_before}"
    after = f"{incident.cause_code}/{incident.resolution_code}"
    if after == before:
        raise InvalidInput(
            field=Field.RECODE,
            problem=f"{public_id} already has cause {incident.cause_code} and resolution {incident.resolution_code}",
        )
    await record(session, incident, at=now, actor=actor, kind="recode", before=before, after=after)
    await session.flush()
    return Recoded(
        incident=incident,
        actor=actor,
        cause_before=cause_before,
        resolution_before=resolution_before,
        cause=incident.cause_code,
        resolution=incident.resolution_code,
    )


def _closed(change: StateChanged) -> Closed:
    """What service.apply gave for Action.CLOSE, as the type it is (store/change.py's STATE_CHANGES)."""
    if not isinstance(change, Closed):
        raise TypeError(f"closing gave {type(change).__name__}, not Closed")
    return change


def _words(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
