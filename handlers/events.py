"""Slack events: reactions and pins that capture a message into its incident's timeline, and the App
Home tab being opened.

Slack re-sends an event it thinks was missed (X-Slack-Retry-Num), so every handler is idempotent: a
capture is one entry per message, keyed by its marks, and a Home tab refresh is queued once per user.
The ack goes at once; reading the message from Slack happens after it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from handlers.deps import Deps
from store import capture, home_views, outbox, service
from store.errors import DomainError
from store.models import Incident
from store.operations import React

log = logging.getLogger("tocsin.events")


async def on_reaction_added(event: dict[str, Any], deps: Deps) -> None:
    if (found := _reaction(event, deps)) is not None:
        channel, ts, user, name = found
        deps.spawn(captured(deps, channel, ts, mark=capture.reaction_mark(name, user), by=user))


async def on_reaction_removed(event: dict[str, Any], deps: Deps) -> None:
    if (found := _reaction(event, deps)) is not None:
        channel, ts, user, name = found
        await uncaptured(deps, channel, ts, mark=capture.reaction_mark(name, user), by=user)


async def on_pin_added(event: dict[str, Any], deps: Deps) -> None:
    if (found := _pin(event)) is not None:
        channel, ts, user, message = found
        deps.spawn(captured(deps, channel, ts, mark=capture.PIN, by=user, message=message))


async def on_pin_removed(event: dict[str, Any], deps: Deps) -> None:
    if (found := _pin(event)) is not None:
        channel, ts, user, _ = found
        await uncaptured(deps, channel, ts, mark=capture.PIN, by=user)


async def on_app_home_opened(event: dict[str, Any], deps: Deps) -> None:
    user = event.get("user")
    if event.get("tab", "home") != "home" or not isinstance(user, str) or not user:
        return  # the Messages tab, where pages arrive as DMs
    async with deps.db.write() as session:
        await home_views.opened(session, user=user, now=deps.clock())
    deps.wake_relay()


def _reaction(event: dict[str, Any], deps: Deps) -> tuple[str, str, str, str] | None:
    item, name, user = event.get("item") or {}, event.get("reaction"), event.get("user")
    if not isinstance(item, dict) or item.get("type") != "message" or name not in deps.policy.capture_emoji:
        return None
    channel, ts = item.get("channel"), item.get("ts")
    if not all(isinstance(value, str) and value for value in (channel, ts, user)):
        return None
    return str(channel), str(ts), str(user), str(name)


def _pin(event: dict[str, Any]) -> tuple[str, str, str, dict[str, Any] | None] | None:
    item, user = event.get("item") or {}, event.get("user")
    if not isinstance(item, dict) or item.get("type") != "message":
        return None
    message = item.get("message") if isinstance(item.get("message"), dict) else None
    channel = item.get("channel") or event.get("channel_id")
    ts = (message or {}).get("ts") or item.get("ts")
    if not all(isinstance(value, str) and value for value in (channel, ts, user)):
        return None
    return str(channel), str(ts), str(user), message


async def incident_of(deps: Deps, channel: str) -> Incident | None:
    """The incident whose channel this is; None outside an incident channel (nothing to capture)."""
    async with deps.db.read() as session:
        try:
            return await service.find(session, policy=deps.policy, channel=channel)
        except DomainError:
            return None


async def captured(
    deps: Deps,
    channel: str,
    ts: str,
    *,
    mark: str,
    by: str,
    message: dict[str, Any] | None = None,
    incident: Incident | None = None,
) -> Incident | None:
    """Capture message `ts` of `channel` into the timeline of `incident` (default: the channel's
    incident), reading it from Slack unless the event carried it, and confirm with Tocsin's reaction
    when it is new there. The incident, or None when there was nothing to capture."""
    incident = incident or await incident_of(deps, channel)
    if incident is None:
        return None
    message = (
        message if message and "text" in message else await deps.slack.read_message(channel=channel, ts=ts)
    )
    if message is None:
        return None
    kept = capture.Message(
        channel=channel,
        ts=ts,
        author=str(message.get("user") or message.get("bot_id") or "unknown"),
        text=str(message.get("text") or ""),
        at=datetime.fromtimestamp(float(ts), UTC),
        permalink=await deps.slack.permalink(channel=channel, ts=ts),
        files=[
            str(f.get("name") or f.get("title") or "file")
            for f in message.get("files") or []
            if isinstance(f, dict)
        ],
    )
    try:
        await _keep(deps, incident, kept, mark=mark, by=by)
    except IntegrityError:  # the same message, captured at the same moment (a retried event): it is there
        await _keep(deps, incident, kept, mark=mark, by=by)
    deps.wake_relay()
    return incident


async def _keep(deps: Deps, incident: Incident, kept: capture.Message, *, mark: str, by: str) -> None:
    async with deps.db.write() as session:
        new = await capture.capture(session, incident, kept, mark=mark, by=by, now=deps.clock())
        if new and deps.policy.ack_emoji:
            react = React(channel=kept.channel, ts=kept.ts, name=deps.policy.ack_emoji)
            outbox.enqueue(
                session, react, now=deps.clock(), incident_number=incident.number, priority=incident.priority
            )


async def uncaptured(deps: Deps, channel: str, ts: str, *, mark: str, by: str) -> None:
    incident = await incident_of(deps, channel)
    if incident is None:
        return
    async with deps.db.write() as session:
        await capture.uncapture(session, incident, ts=ts, mark=mark, by=by, now=deps.clock())
