"""The audit trail, one row per change (who, what, when, from and to), and the timeline people see.

The visible timeline is the incident's rows in the time things happened (a captured message at its
own time, `occurred_at`), without the rows taken off it (`removed_at`) and without the audit-only rows
that record an edit or a removal. Notes and captured messages may be edited or removed by their author,
the commander or an admin; the row of the edit or removal keeps the original text.

An entry's number is its place among the incident's rows in that order, counting the removed ones: a
removal leaves a gap instead of renumbering the rest, so the numbers a person has just read stay true
while they (or someone else) remove entries one after another. Only a message captured later with an
older time moves the numbers after it, since it takes its place in time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.change import Change
from store.errors import Field, Forbidden, InvalidInput, TooLong
from store.models import Incident, TimelineEntry, table_of
from store.policy import Policy
from store.text import shown_length

SYSTEM_ACTOR = "tocsin"  # the actor of what the scheduler does

NOTE = "note"
CAPTURED = "captured"  # a message of the incident's channel (store/capture.py)
EDITED = "timeline_edited"
REMOVED = "timeline_removed"
UNCAPTURED = "capture_removed"  # store/capture.py's row of a capture undone
EDITABLE = frozenset({NOTE, CAPTURED})  # every other kind records a change, kept as it happened
AUDIT_ONLY = frozenset({EDITED, REMOVED, UNCAPTURED})
TEXT_MAX = 2000  # as a note's (store/service.py)
_STORED_MAX = 5 * TEXT_MAX


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


# Every row of an incident that has a number, with it (removed rows too: they keep theirs).
_NUMBERED = (
    select(
        TimelineEntry.id.label("id"),
        func.row_number()
        .over(order_by=(func.coalesce(TimelineEntry.occurred_at, TimelineEntry.at), TimelineEntry.id))
        .label("number"),
    )
    .where(TimelineEntry.incident_number == bindparam("incident"), TimelineEntry.kind.not_in(AUDIT_ONLY))
    .subquery()
)
_VISIBLE = (
    select(_NUMBERED.c.number, TimelineEntry)
    .join(_NUMBERED, _NUMBERED.c.id == TimelineEntry.id)
    .where(TimelineEntry.removed_at.is_(None))
    .order_by(_NUMBERED.c.number)
)
_ID_OF_NUMBER = select(_NUMBERED.c.id).where(_NUMBERED.c.number == bindparam("number"))
_LOCKED = (
    select(TimelineEntry)
    .where(TimelineEntry.id == bindparam("id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


async def visible(
    session: AsyncSession, incident: Incident, *, limit: int = 200
) -> list[tuple[int, TimelineEntry]]:
    """The first `limit` entries of the visible timeline, each with its number, in time order."""
    rows = await session.execute(_VISIBLE.limit(limit), {"incident": incident.number})
    return [(number, entry) for number, entry in rows]


@dataclass(frozen=True, kw_only=True)
class EntryEdited(Change):
    """Timeline entry `number` (a note or a captured message) now says `text`; it said `original`."""

    kind: ClassVar[str] = EDITED
    number: int
    text: str
    original: str | None


@dataclass(frozen=True, kw_only=True)
class EntryRemoved(Change):
    """Timeline entry `number`, which said `original`, is off the visible timeline."""

    kind: ClassVar[str] = REMOVED
    number: int
    original: str | None


async def edit(
    session: AsyncSession,
    incident: Incident,
    number: int,
    text: str,
    *,
    policy: Policy,
    actor: str,
    now: datetime,
) -> EntryEdited:
    """Entry `number` says `text` from now on; the audit trail keeps what it said."""
    entry = await _editable(session, incident, number, doing="edit", policy=policy, actor=actor)
    text = _new_text(text, number, entry)
    original = entry.text
    entry.text, entry.edited_at = text, now
    await record(
        session,
        incident,
        at=now,
        actor=actor,
        kind=EDITED,
        before=entry.kind,
        after=str(entry.id),
        text=original,
    )
    return EntryEdited(incident=incident, actor=actor, number=number, text=text, original=original)


async def remove(
    session: AsyncSession, incident: Incident, number: int, *, policy: Policy, actor: str, now: datetime
) -> EntryRemoved:
    """Entry `number` leaves the visible timeline (and the review); its row stays, and so does its number."""
    entry = await _editable(session, incident, number, doing="remove", policy=policy, actor=actor)
    entry.removed_at = now
    await record(
        session,
        incident,
        at=now,
        actor=actor,
        kind=REMOVED,
        before=entry.kind,
        after=str(entry.id),
        text=entry.text,
    )
    return EntryRemoved(incident=incident, actor=actor, number=number, original=entry.text)


async def _editable(
    session: AsyncSession, incident: Incident, number: int, *, doing: str, policy: Policy, actor: str
) -> TimelineEntry:
    """Entry `number`, locked, if it is shown, may be changed at all, and may be changed by `actor`."""
    public_id = policy.public_id(incident.number)
    entry_id = await session.scalar(_ID_OF_NUMBER, {"incident": incident.number, "number": number})
    entry = None if entry_id is None else await session.scalar(_LOCKED, {"id": entry_id})
    if entry is None:
        raise InvalidInput(
            field=Field.COMMAND,
            problem=f"{public_id} has no timeline entry {number}: `/incident timeline` shows the numbers",
        )
    if entry.removed_at is not None:
        raise InvalidInput(
            field=Field.COMMAND, problem=f"timeline entry {number} of {public_id} was removed already"
        )
    if entry.kind not in EDITABLE:
        raise InvalidInput(
            field=Field.COMMAND,
            problem=f"timeline entry {number} of {public_id} records a change (`{entry.kind}`), which the "
            f"timeline keeps as it happened: only notes and captured messages can be edited or removed",
        )
    if actor not in (entry.actor, incident.commander) and not policy.is_admin(actor):
        raise Forbidden(
            incident_id=public_id,
            action=f"{doing} timeline entry {number} of",
            commander=incident.commander,
            admins=sorted(policy.admins),
            owner=entry.actor,
            owner_role="author",
        )
    return entry


def _new_text(text: str, number: int, entry: TimelineEntry) -> str:
    """`text`, stripped, if it says something new and fits a note's limits (store/service.py's)."""
    text = text.strip()
    if not text:
        raise InvalidInput(
            field=Field.NOTE,
            problem=f"say what timeline entry {number} should say: `/incident timeline edit {number} <new text>`",
        )
    shown = shown_length(text)
    if shown > TEXT_MAX or len(text) > _STORED_MAX:
        length, limit = (shown, TEXT_MAX) if shown > TEXT_MAX else (len(text), _STORED_MAX)
        raise TooLong(field=Field.NOTE, length=length, limit=limit, text=text)
    if text == entry.text:
        raise InvalidInput(field=Field.NOTE, problem=f"timeline entry {number} says that already")
    return text
