"""The stakeholders' status page: the open incidents its commander did not keep off it, each with its
latest stakeholder update (`/incident update`), and nothing else: no channel, no people, no timeline.

An update's text may mention people and channels; the page shows those mentions as "someone" and "a
channel", so what it shows of an update names nobody either."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from store.change import Change
from store.errors import Field, Forbidden, InvalidInput
from store.models import OPEN_STATES, Incident, State, TimelineEntry
from store.policy import Policy
from store.text import Markup, pieces
from store.timeline import record

HIDDEN, SHOWN = "status_page_hidden", "status_page_shown"
UPDATE = "update"  # the timeline kind of a stakeholder update (store/service.py's post_update)
LISTED = 200  # the page lists at most this many incidents


@dataclass(frozen=True, kw_only=True)
class StatusPageChange(Change):
    """The incident was kept off the status page (`hidden`), or put back on it."""

    hidden: bool


@dataclass(frozen=True, kw_only=True)
class StatusPageHidden(StatusPageChange):
    kind: ClassVar[str] = HIDDEN
    hidden: bool = True


@dataclass(frozen=True, kw_only=True)
class StatusPageShown(StatusPageChange):
    kind: ClassVar[str] = SHOWN
    hidden: bool = False


@dataclass(frozen=True)
class PublicIncident:
    """What the status page may show of an incident."""

    number: int  # shown as policy.public_id(number)
    title: str  # as Slack encodes it (store/text.py)
    priority: str
    state: State
    declared_at: datetime
    update: str | None  # the latest stakeholder update, as Slack encodes it, mentions made anonymous
    updated_at: datetime | None


async def set_hidden(
    session: AsyncSession, incident: Incident, *, hidden: bool, policy: Policy, actor: str, now: datetime
) -> StatusPageChange:
    """Keep the incident off the status page, or put it back: its commander, its comms lead or an admin."""
    if actor not in (incident.commander, incident.comms) and not policy.is_admin(actor):
        raise Forbidden(
            incident_id=policy.public_id(incident.number),
            action="hide from the status page" if hidden else "show on the status page",
            commander=incident.commander,
            admins=sorted(policy.admins),
            owner=incident.comms,
            owner_role="comms lead",
        )
    if incident.status_hidden == hidden:
        where = "off" if hidden else "on"
        raise InvalidInput(
            field=Field.INCIDENT,
            problem=f"{policy.public_id(incident.number)} is {where} the status page already",
        )
    incident.status_hidden = hidden
    await session.flush()  # the incident's UPDATE, refused if its version moved on (StaleDataError)
    before, after = ("shown", "hidden") if hidden else ("hidden", "shown")
    await record(
        session, incident, at=now, actor=actor, kind=HIDDEN if hidden else SHOWN, before=before, after=after
    )
    made = StatusPageHidden if hidden else StatusPageShown
    return made(incident=incident, actor=actor)


async def public(session: AsyncSession, *, now: datetime) -> list[PublicIncident]:
    """The open incidents not kept off the page and declared by `now`, P1 first, then oldest first."""
    listed = (
        select(Incident.number, Incident.title, Incident.priority, Incident.state, Incident.declared_at)
        .where(
            Incident.state.in_(list(OPEN_STATES)),
            Incident.status_hidden.is_(False),
            Incident.declared_at <= now,
        )
        .order_by(Incident.priority, Incident.declared_at, Incident.number)
        .limit(LISTED)
        .subquery()
    )
    # Each one's latest update: the greatest id among its update rows, read through ix_timeline_incident.
    updates = aliased(TimelineEntry)
    latest = (
        select(func.max(updates.id))
        .where(updates.incident_number == listed.c.number, updates.kind == UPDATE)
        .correlate(listed)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(listed, TimelineEntry.text, TimelineEntry.at)
        .outerjoin(TimelineEntry, TimelineEntry.id == latest)
        .order_by(listed.c.priority, listed.c.declared_at, listed.c.number)
    )
    return [
        PublicIncident(
            number=row.number,
            title=row.title,
            priority=row.priority,
            state=row.state,
            declared_at=row.declared_at,
            update=None if row.text is None else anonymous(row.text),
            updated_at=row.at,
        )
        for row in rows
    ]


_NAMELESS = {"user": "someone", "group": "a team", "channel": "a channel"}


def anonymous(text: str) -> str:
    """`text` (as Slack encodes it) with its mentions of people, user groups and channels made nameless;
    links and @here stay as they were."""
    kept = []
    for piece in pieces(text):
        if isinstance(piece, Markup) and piece.kind in _NAMELESS:
            kept.append(_NAMELESS[piece.kind])
        elif isinstance(piece, Markup):
            label = f"|{_encode(piece.label)}" if piece.label else ""
            target = piece.target if piece.kind == "link" else f"!{piece.target}"
            kept.append(f"<{_encode(target)}{label}>")
        else:
            kept.append(_encode(piece))
    return "".join(kept)


def _encode(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
