"""Messages of an incident's channel captured into its timeline: by a reaction, a pin or a shortcut.

One entry per message and incident, whatever captured it and however often Slack re-sent the event: the
entry keeps the `marks` (a reaction by one person, the pin, a shortcut) that capture it, and leaves the
visible timeline when the last one goes. Its removal is a row of its own in the audit trail, holding
the text that was shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Incident, TimelineEntry
from store.timeline import CAPTURED, UNCAPTURED, record

PIN = "pin"


def reaction_mark(name: str, user: str) -> str:
    return f"reaction:{name}:{user}"


def shortcut_mark(user: str) -> str:
    return f"shortcut:{user}"


@dataclass(frozen=True)
class Message:
    """A Slack message as the timeline keeps it: text as Slack sent it (mrkdwn, markup and all)."""

    channel: str
    ts: str
    author: str
    text: str
    at: datetime  # the message's own time
    permalink: str | None = None
    files: list[str] = field(default_factory=list)


async def _entry(session: AsyncSession, number: int, ts: str) -> TimelineEntry | None:
    query = select(TimelineEntry).where(
        TimelineEntry.incident_number == number, TimelineEntry.message_ts == ts
    )
    return (await session.scalars(query.with_for_update())).first()


async def capture(
    session: AsyncSession, incident: Incident, message: Message, *, mark: str, by: str, now: datetime
) -> bool:
    """Capture `message` into the incident's timeline by `mark`, for `by`; whether it newly shows there
    (False: it was there already, by another mark or by this one again)."""
    entry = await _entry(session, incident.number, message.ts)
    if entry is None:
        session.add(
            TimelineEntry(
                incident_number=incident.number,
                at=now,
                actor=message.author[:32],
                kind=CAPTURED,
                from_value=by[:64],  # who captured it
                text=message.text,
                occurred_at=message.at,
                message_ts=message.ts,
                message_channel=message.channel,
                permalink=message.permalink,
                files=list(message.files) or None,
                marks=[mark],
            )
        )
        await session.flush()
        return True
    marks = list(entry.marks or [])
    shown = entry.removed_at is None
    if mark not in marks:
        entry.marks = [*marks, mark]
    if not shown:  # taken off before, captured again: shown again, as it is now in Slack
        entry.removed_at, entry.text, entry.marks = None, message.text, [mark]
    return not shown


async def uncapture(
    session: AsyncSession, incident: Incident, *, ts: str, mark: str, by: str, now: datetime
) -> bool:
    """`mark` no longer captures message `ts`; when it was the last, the entry leaves the timeline, and
    the audit trail records who removed it and what it showed. Whether it left."""
    entry = await _entry(session, incident.number, ts)
    if entry is None or mark not in (entry.marks or []):
        return False
    entry.marks = [kept for kept in entry.marks or [] if kept != mark]
    if entry.marks or entry.removed_at is not None:
        return False
    entry.removed_at = now
    await record(session, incident, at=now, actor=by, kind=UNCAPTURED, after=str(entry.id), text=entry.text)
    return True
