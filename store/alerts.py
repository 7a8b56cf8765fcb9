"""Monitoring alerts: one incident per alert key, however many copies arrive, wherever they arrive.

A delivery names a key (Alertmanager's groupKey, or the webhook's dedup_key) within its source. The
first firing of a key *claims* it: an `alert_sources` row inserted with ON CONFLICT DO NOTHING against a
unique index over the unreleased rows, so of any number of concurrent deliveries, on any number of
processes, exactly one inserts the claim and declares the incident, in the same transaction; the others
wait for it (PostgreSQL) or run after it (SQLite's single writer) and find the claim. A claim is released
once its incident is no longer open, so the key's next firing opens a new incident.

Repeats count on the incident (the card shows the count), and each adds a timeline entry. So that a
storm of copies cannot flood the channel, an `alert_received` message goes out for the first repeat, for
a firing after the alert cleared, and otherwise at most once per NOTICE_EVERY; and at most one card
refresh waits in the outbox per incident: the relay renders the card when it delivers, so the waiting
refresh shows the count as it is then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store import dialect, service
from store.change import AlertChange, AlertCounted, AlertReceived, AlertResolved, Change
from store.machine import Action
from store.models import AlertSource, Incident, OutboxMessage
from store.policy import AUTO_RESOLVE_CODES, AlertPolicy, Policy
from store.timeline import SYSTEM_ACTOR, record

NOTICE_EVERY = timedelta(minutes=5)  # at most one alert_received message per incident this often
_ATTEMPTS = 5  # release a stale claim, lose the race for a new one, then use the winner's: 3 suffice


@dataclass(frozen=True)
class Alert:
    """One delivery, parsed and validated by the handler."""

    source: str  # "alertmanager", or the webhook's `source`; the reporter of what it declares
    key: str
    firing: bool  # False: resolved
    title: str = ""
    description: str = ""
    label_sets: tuple[Mapping[str, str], ...] = ()  # one per firing alert, for the routes
    priority: str | None = None  # given outright (webhook), instead of the routes
    category: str | None = None
    started_at: datetime | None = None  # aware
    ended_at: datetime | None = None  # aware; when a resolved alert cleared
    details: tuple[Mapping[str, Any], ...] = ()  # what to show of each alert: status, name, summary, labels


@dataclass
class Receipt:
    """What one delivery did: `result` is created, deduplicated, cleared, resolved, duplicate or ignored."""

    result: str
    incident: Incident | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.incident.alert_count if self.incident is not None else 0


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def route(policy: AlertPolicy, label_sets: tuple[Mapping[str, str], ...]) -> tuple[str, str | None]:
    """(priority, category or None) for alerts with these label sets: each set takes its first matching
    route (else the default), and the most urgent of those wins."""
    chosen = [
        next(((r.priority, r.category) for r in policy.routes if r.matches(labels)), None)
        or (policy.default_priority, None)
        for labels in label_sets
    ]
    return min(chosen, key=lambda pair: pair[0], default=(policy.default_priority, None))


async def receive(session: AsyncSession, alert: Alert, *, policy: Policy, now: datetime) -> Receipt:
    """Declare, count or clear, in the caller's transaction."""
    digest = key_hash(alert.key)
    for _ in range(_ATTEMPTS):
        claim = await _open_claim(session, alert.source, digest)
        if claim is None:
            if not alert.firing:
                return Receipt("ignored")  # nothing open for this key: a late or repeated resolve
            claim = await _claim(session, alert, digest, now=now)
            if claim is None:
                continue  # another delivery claimed the key a moment ago: count on its incident
            return await _declare(session, claim, alert, policy=policy, now=now)
        incident = await session.scalar(
            select(Incident)
            .where(Incident.number == claim.incident_number)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if incident is None or not incident.is_open:
            claim.released_at = now
            await session.flush()
            continue
        if alert.firing:
            return await _repeat(session, claim, incident, alert, now=now)
        return await _clear(session, claim, incident, alert, policy=policy, now=now)
    raise RuntimeError(f"alert key {alert.key[:80]!r} of {alert.source} did not settle")


async def _open_claim(session: AsyncSession, source: str, digest: str) -> AlertSource | None:
    """The key's unreleased claim, locked (PostgreSQL) so deliveries for one key take turns."""
    return await session.scalar(
        select(AlertSource)
        .where(
            AlertSource.source == source, AlertSource.key_hash == digest, AlertSource.released_at.is_(None)
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def _claim(session: AsyncSession, alert: Alert, digest: str, *, now: datetime) -> AlertSource | None:
    """Insert the key's claim unless an unreleased one exists; None when another delivery holds it."""
    values = dict(
        source=alert.source,
        key=alert.key,
        key_hash=digest,
        first_received_at=now,
        last_received_at=now,
        noticed_at=now,
        noticed_count=1,
    )
    claim = dialect.insert_or_ignore(
        session, AlertSource, values, unique=["source", "key_hash"], where=AlertSource.released_at.is_(None)
    )
    claimed = await session.scalar(claim.returning(AlertSource.id))
    return None if claimed is None else await session.get(AlertSource, claimed)


async def _declare(
    session: AsyncSession, claim: AlertSource, alert: Alert, *, policy: Policy, now: datetime
) -> Receipt:
    priority, category = route(policy.alerts, alert.label_sets)
    declared = await service.declare(
        session,
        policy=policy,
        title=alert.title,
        reporter=alert.source,
        alert_source=alert.source,
        now=now,
        description=alert.description,
        category=alert.category or category,
        priority=alert.priority or priority,
        detected_at=min(alert.started_at, now) if alert.started_at else None,  # a clock ahead is not news
    )
    claim.incident_number = declared.incident.number
    await session.flush()
    notice = _change(AlertReceived, declared.incident, alert, started_at=alert.started_at)
    return Receipt("created", declared.incident, [declared, notice])


async def _repeat(
    session: AsyncSession, claim: AlertSource, incident: Incident, alert: Alert, *, now: datetime
) -> Receipt:
    incident.alert_count += 1
    count, refired = incident.alert_count, claim.resolved_at is not None
    claim.last_received_at, claim.resolved_at = now, None
    first_repeat = claim.noticed_count <= 1
    noticed = refired or first_repeat or claim.noticed_at is None or now - claim.noticed_at >= NOTICE_EVERY
    since = count - claim.noticed_count
    await record(  # every copy is on the timeline, with the running total; the channel hears of a few
        session,
        incident,
        at=now,
        actor=alert.source,
        kind="alert",
        before="resolved" if refired else "firing",
        after="firing",
        text="firing again after it cleared" if refired else f"received again: {count} times in all",
    )
    if noticed:
        claim.noticed_at, claim.noticed_count = now, count
    await session.flush()
    change = _change(
        AlertReceived if noticed else AlertCounted,
        incident,
        alert,
        since=since,
        refired=refired,
        refresh_card=not await _card_refresh_waiting(session, incident.number),
    )
    return Receipt("deduplicated", incident, [change])


async def _clear(
    session: AsyncSession,
    claim: AlertSource,
    incident: Incident,
    alert: Alert,
    *,
    policy: Policy,
    now: datetime,
) -> Receipt:
    if claim.resolved_at is not None:
        return Receipt("duplicate", incident)
    cleared_at = min(alert.ended_at or now, now)
    claim.resolved_at = cleared_at
    shown = cleared_at.astimezone(policy.timezone).strftime("%Y-%m-%d %H:%M:%S %Z")
    await record(
        session,
        incident,
        at=now,
        actor=alert.source,
        kind="alert",
        before="firing",
        after="resolved",
        text=f"alert resolved at {shown}",
    )
    auto = policy.alerts.auto_resolve and incident.acknowledged_at is None
    changes: list[Change] = [
        _change(
            AlertResolved,
            incident,
            alert,
            cleared_at=cleared_at,
            auto_resolved=auto,
            refresh_card=not auto and not await _card_refresh_waiting(session, incident.number),
        )
    ]
    if auto:
        cause, resolution = AUTO_RESOLVE_CODES
        changes.append(
            await service.apply(
                session,
                incident,
                Action.RESOLVE,
                policy=policy,
                actor=SYSTEM_ACTOR,
                now=now,
                summary=f"The {alert.source} alert cleared at {shown} before anyone acknowledged the "
                "incident, so Tocsin resolved it.",
                cause=cause,
                resolution=resolution,
            )
        )
    await session.flush()
    return Receipt("resolved" if auto else "cleared", incident, changes)


def _change(kind: type[AlertChange], incident: Incident, alert: Alert, **facts: Any) -> AlertChange:
    """A change of `kind` about `alert`, with the facts every alert change carries and `facts`."""
    return kind(
        incident=incident,
        actor=alert.source,
        count=incident.alert_count,
        source=alert.source,
        details=alert.details,
        **facts,
    )


async def _card_refresh_waiting(session: AsyncSession, number: int) -> bool:
    """Whether a card refresh for this incident is in the outbox and no relay has picked it up yet.

    Such a refresh will render the card as it is when delivered, so it will show this delivery's count
    too. Locking it (PostgreSQL) keeps a relay from claiming it until this transaction commits; a refresh
    a relay has claimed may already be rendered, so then a new one is needed."""
    waiting = await session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.incident_number == number,
            OutboxMessage.op == "refresh",
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.locked_by.is_(None),
        )
        .with_for_update()
    )
    return any(row.payload.get("target") == "card" for row in waiting)
