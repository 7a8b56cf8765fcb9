"""store/dashboard.py on both stores: the open incidents with their clocks (at each boundary), the cap on
the list, the trend's days, the fingerprint; and store/metrics.py's weekly series the reports chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update

from bot.config import load_policy
from store import dashboard, metrics, outbox, service
from store.db import Database
from store.machine import Action
from store.models import Incident, OutboxMessage, State
from store.operations import PublishHome

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a Sunday
ADMIN, ALICE, BOB = "U0123ADMIN", "U_ALICE", "U_BOB"
RESOLVE = {"summary": "Restarted the pool", "cause": "capacity", "resolution": "restart"}
P1_WARN, P1_DUE = timedelta(minutes=15) * POLICY.warn_at, timedelta(minutes=15)  # P1's response


async def declared(
    db: Database, title: str, *, priority: str = "P3", at: datetime = NOW, **given: Any
) -> int:
    async with db.write() as session:
        change = await service.declare(
            session, policy=POLICY, title=title, priority=priority, reporter=ALICE, now=at, **given
        )
        return change.incident.number


async def applied(
    db: Database, number: int, action: Action, *, at: datetime, actor: str = BOB, **given: Any
) -> None:
    """`action` by Bob, who becomes the commander by acknowledging (the admin cancels)."""
    actor = ADMIN if action is Action.CANCEL else actor
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, action, policy=POLICY, actor=actor, now=at, **given)


async def shown(db: Database, now: datetime) -> dashboard.OpenIncidents:
    async with db.read() as session:
        return await dashboard.open_incidents(session, policy=POLICY, now=now)


async def test_open_incidents_by_priority_then_age_with_their_facts(db: Database) -> None:
    p3 = await declared(db, "Slow search", category="application")
    p1 = await declared(
        db, "Checkout down", priority="P1", category="database", at=NOW + timedelta(minutes=1)
    )
    p2_old = await declared(db, "Old P2", priority="P2", at=NOW - timedelta(hours=1))
    p2_new = await declared(db, "New P2", priority="P2")
    done = await declared(db, "Gone already", priority="P1")
    await applied(db, done, Action.ACK, at=NOW + timedelta(minutes=1))
    await applied(db, done, Action.RESOLVE, at=NOW + timedelta(minutes=2), **RESOLVE)
    cancelled = await declared(db, "False alarm", priority="P1")
    await applied(db, cancelled, Action.CANCEL, at=NOW + timedelta(minutes=2), reason="test page")
    await applied(db, p1, Action.ACK, at=NOW + timedelta(minutes=3))

    listed = await shown(db, NOW + timedelta(minutes=5))

    assert [row.number for row in listed.rows] == [p1, p2_old, p2_new, p3]
    assert listed.total == 4
    first = listed.rows[0]
    assert (first.title, first.priority, first.state, first.category) == (
        "Checkout down",
        "P1",
        State.INVESTIGATING,
        "database",
    )
    assert (first.commander, first.escalation_level, first.level_name) == (BOB, 1, "Service desk")
    assert first.declared_at == NOW + timedelta(minutes=1)
    assert first.channel_id is None  # Slack has not made it yet
    assert first.response.state == "met" and first.response.seconds_left is None
    assert first.resolution.state == "ok"
    assert first.resolution.due_at == NOW + timedelta(minutes=1, hours=4)
    assert first.resolution.seconds_left == (timedelta(hours=4) - timedelta(minutes=4)).total_seconds()


@pytest.mark.parametrize(
    ("elapsed", "state"),
    [
        (timedelta(), "ok"),
        (P1_WARN - timedelta(microseconds=1), "ok"),
        (P1_WARN, "at_risk"),
        (P1_DUE - timedelta(microseconds=1), "at_risk"),
        (P1_DUE, "breached"),
        (P1_DUE + timedelta(hours=1), "breached"),
    ],
)
async def test_a_running_clock_is_ok_then_at_risk_past_warn_at_then_breached_once_due(
    db: Database, elapsed: timedelta, state: str
) -> None:
    await declared(db, "Checkout down", priority="P1")

    (row,) = (await shown(db, NOW + elapsed)).rows

    assert row.response.state == state
    assert row.response.warn_at == NOW + P1_WARN
    assert row.response.due_at == NOW + P1_DUE
    assert row.response.seconds_left == (P1_DUE - elapsed).total_seconds()


async def test_a_clock_stopped_late_or_marked_breached_stays_breached(db: Database) -> None:
    late = await declared(db, "Acknowledged late", priority="P1")
    await applied(db, late, Action.ACK, at=NOW + P1_DUE + timedelta(minutes=1))
    marked = await declared(db, "Marked by its timer", priority="P1")
    async with db.write() as session:
        incident = await session.get(Incident, marked)
        assert incident is not None
        incident.resolution_breached_at = NOW + timedelta(minutes=1)

    rows = {row.number: row for row in (await shown(db, NOW + P1_DUE + timedelta(minutes=2))).rows}

    assert rows[late].response.state == "breached"
    assert rows[late].response.seconds_left is None  # stopped
    assert rows[marked].resolution.state == "breached"  # whatever the time says


async def test_the_clocks_of_an_incident_cancelled_unanswered_are_paused(db: Database) -> None:
    number = await declared(db, "False alarm", priority="P1")
    await applied(db, number, Action.CANCEL, at=NOW + timedelta(minutes=1), reason="not ours")
    async with db.read() as session:
        incident = await session.get(Incident, number)
        assert incident is not None
        reading = dashboard.clock(incident, "response", policy=POLICY, now=NOW + timedelta(hours=1))
    assert (reading.state, reading.seconds_left) == ("paused", None)


async def test_at_most_500_open_incidents_are_listed_with_the_true_total(db: Database) -> None:
    rows = [
        dict(
            title=f"Storm {n}",
            description="",
            category="other",
            priority="P3",
            state=State.TRIAGE,
            reporter=ALICE,
            declared_at=NOW - timedelta(seconds=n),
            escalation_level=1,
            reopen_count=0,
            resolution_paused_seconds=0,
        )
        for n in range(505)
    ]
    async with db.write() as session:
        await session.execute(insert(Incident), rows)

    listed = await shown(db, NOW)

    assert (len(listed.rows), listed.total) == (dashboard.OPEN_LISTED, 505)
    assert listed.rows[0].title == "Storm 504"  # the oldest first


async def test_next_change_is_the_next_warning_or_due_time_of_a_running_clock(db: Database) -> None:
    await declared(db, "Checkout down", priority="P1")
    await declared(db, "Slow search", priority="P4")

    assert dashboard.next_change((await shown(db, NOW)).rows, now=NOW) == NOW + P1_WARN
    later = NOW + P1_WARN
    assert dashboard.next_change((await shown(db, later)).rows, now=later) == NOW + P1_DUE
    assert dashboard.next_change([], now=NOW) is None


async def test_the_trend_has_every_day_of_the_window_with_that_days_figures(db: Database) -> None:
    two_days_ago = NOW - timedelta(days=2)
    met = await declared(db, "Acknowledged in time", priority="P1", at=two_days_ago)
    await applied(db, met, Action.ACK, at=two_days_ago + timedelta(minutes=10))
    late = await declared(db, "Acknowledged late", priority="P1", at=two_days_ago)
    await applied(db, late, Action.ACK, at=two_days_ago + timedelta(minutes=20))
    await applied(db, late, Action.RESOLVE, at=two_days_ago + timedelta(hours=1), **RESOLVE)
    await declared(db, "Still open", at=NOW - timedelta(hours=1))
    cancelled = await declared(db, "False alarm", at=NOW - timedelta(hours=1))
    await applied(db, cancelled, Action.CANCEL, at=NOW, reason="not ours")
    await declared(db, "Before the window", at=NOW - timedelta(days=30))

    async with db.read() as session:
        days = await dashboard.trend(session, policy=POLICY, now=NOW, days=30)

    assert len(days) == 30
    assert (days[0].day, days[-1].day) == (date(2026, 10, 24), date(2026, 11, 22))
    busy = days[-3]
    assert (busy.day, busy.declared, busy.cancelled) == (date(2026, 11, 20), 2, 0)
    assert busy.mtta_seconds == 15 * 60  # 10 and 20 minutes
    assert busy.mttr_seconds == 3600
    # Three clocks ran out (two responses, one resolution); one response was late.
    assert (busy.sla_measured, busy.sla_met, busy.sla_compliance) == (3, 2, round(2 / 3, 4))
    today = days[-1]
    assert (today.declared, today.cancelled, today.mtta_seconds, today.sla_compliance) == (2, 1, None, None)
    assert all(d.declared == 0 and d.mttr_seconds is None for d in days if d not in (busy, today))


async def test_the_weekly_series_has_every_iso_week_of_the_window(db: Database) -> None:
    monday = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    first = await declared(db, "Monday", priority="P1", at=monday)
    await applied(db, first, Action.ACK, at=monday + timedelta(minutes=5))
    second = await declared(db, "Sunday", priority="P1", at=NOW - timedelta(hours=1))
    await applied(db, second, Action.ACK, at=NOW - timedelta(minutes=30))
    await declared(db, "The week before", at=monday - timedelta(days=1))

    async with db.read() as session:
        weeks = await metrics.weekly(session, policy=POLICY, now=NOW, days=14)

    assert [w["week"] for w in weeks] == ["2026-W45", "2026-W46", "2026-W47"]
    assert weeks[0]["starts"] == "2026-11-02" and weeks[0]["incidents"] == 0
    assert weeks[1]["incidents"] == 1
    this = weeks[2]
    assert (this["incidents"], this["cancelled"], this["mtta_seconds"]) == (2, 0, (5 + 30) * 60 / 2)
    assert this["sla_compliance"] == 0.5  # the second was acknowledged after 30 of its 15 minutes
    assert this["mttr_seconds"] is None


async def test_the_fingerprint_moves_with_what_the_dashboard_shows(db: Database) -> None:
    async def taken() -> tuple[object, ...]:
        async with db.read() as session:
            return await dashboard.fingerprint(session)

    empty = await taken()
    number = await declared(db, "Checkout down", priority="P1")
    declared_print = await taken()
    assert declared_print != empty
    assert await taken() == declared_print  # nothing changed

    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.add_note(session, incident, "looking", policy=POLICY, actor=BOB, now=NOW)
    noted = await taken()
    assert noted != declared_print

    async with db.write() as session:  # a message queued, then delivered
        outbox.enqueue(session, PublishHome(user=BOB), now=NOW, incident_number=None)
    queued = await taken()
    assert queued != noted
    async with db.write() as session:
        await session.execute(update(OutboxMessage).values(delivered_at=NOW))
    assert await taken() != queued
