"""store/timers.py: the timers an incident gets from its row, kept in step with it, fired exactly once.

Times are written out from app.yaml, not computed from the policy: P1 responds in 15m and resolves in
4h, P3 in 2h and 24h; warnings come at 75%; level 1 is re-paged every 10m, level 2 is paged 15m after
level 1 and level 3 30m after that. What the messages then say is tests/test_scheduler.py's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import load_policy
from store import health, lookup, service, timers
from store.db import Database
from store.machine import Action
from store.models import Incident, Timer
from store.timeline import SYSTEM_ACTOR

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
M, H = timedelta(minutes=1), timedelta(hours=1)
BOB = "U_BOB"
RESOLVE = {"summary": "Restarted", "cause": "capacity", "resolution": "restart"}


def paging(level: int = 1, *, next_page: timedelta = 15 * M, repeat: timedelta = 10 * M) -> set:
    """The timers of a page nobody has acknowledged: the next level, and this one again."""
    return {
        ("escalation_page", str(level + 1), NOW + next_page),
        ("escalation_repeat", str(level), NOW + repeat),
    }


def clocks(response: timedelta, resolution: timedelta) -> set:
    return {
        ("sla_warning", "response", NOW + response * 3 / 4),
        ("sla_breached", "response", NOW + response),
        ("sla_warning", "resolution", NOW + resolution * 3 / 4),
        ("sla_breached", "resolution", NOW + resolution),
    }


async def declared(db: Database, priority: str = "P3") -> int:
    async with db.write() as session:
        change = await service.declare(
            session, policy=POLICY, title="Disk full", reporter="U_ALICE", now=NOW, priority=priority
        )
        return change.incident.number


async def act(db: Database, number: int, action: Action, at: datetime, **given) -> None:
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, action, policy=POLICY, actor=BOB, now=at, **given)


async def pending(db: Database, number: int) -> set[tuple[str, str, datetime]]:
    async with db.read() as session:
        return {(t.kind, t.key, t.due_at) for t in await timers.pending(session, number=number)}


async def every_timer(db: Database, number: int) -> list[Timer]:
    """All the incident's timers, pending, fired and cancelled, in the order they were made."""
    async with db.read() as session:
        query = select(Timer).where(Timer.incident_number == number).order_by(Timer.id)
        return list(await session.scalars(query))


async def sweep(db: Database, now: datetime) -> list[tuple[str, str, str | None]]:
    """One round as bot/scheduler.py runs it: each timer claimed, as (kind, key, what firing it did)."""
    async with db.write() as session:
        due = await timers.due(session, now=now, limit=100)
        if not due:
            return []
        numbers = sorted({number for _, number in due})
        incidents = await lookup.by_numbers(session, numbers, lock=True)
        claimed = await timers.claim(session, ids=[timer_id for timer_id, _ in due], now=now)
        left = await timers.pending_for(session, numbers=numbers)
        fired = []
        for timer in claimed:
            number = timer.incident_number
            outcome = await timers.fire(
                session, timer, incidents[number], policy=POLICY, now=now, pending=left[number]
            )
            fired.append((timer.kind, timer.key, None if outcome is None else outcome.kind))
        return fired


@pytest.mark.parametrize(
    ("priority", "response", "resolution"),
    [("P1", 15 * M, 4 * H), ("P2", 30 * M, 8 * H), ("P3", 2 * H, 24 * H), ("P4", 8 * H, 72 * H)],
)
async def test_a_declared_incident_gets_its_prioritys_clocks_and_the_next_page(
    db: Database, priority: str, response: timedelta, resolution: timedelta
) -> None:
    number = await declared(db, priority)
    assert await pending(db, number) == clocks(response, resolution) | paging()
    async with db.read() as session:
        incident = await session.get(Incident, number)
    assert {(p.kind, p.key, p.due_at) for p in timers.plan(incident, policy=POLICY)} == await pending(
        db, number
    )


async def test_acknowledging_stops_the_response_clock_and_the_paging_and_starts_update_nudges(
    db: Database,
) -> None:
    number = await declared(db, "P1")
    before = {(t.kind, t.key): t.id for t in await every_timer(db, number)}
    await act(db, number, Action.ACK, NOW + 5 * M)
    assert await pending(db, number) == {
        ("sla_warning", "resolution", NOW + 3 * H),
        ("sla_breached", "resolution", NOW + 4 * H),
        ("update_nudge", "", NOW + 5 * M + 30 * M),  # P1 updates every 30m from the acknowledgement
    }
    after = {(t.kind, t.key): t for t in await every_timer(db, number)}
    cancelled = {key for key, t in after.items() if t.cancelled_at == NOW + 5 * M}
    assert cancelled == {
        ("sla_warning", "response"),
        ("sla_breached", "response"),
        ("escalation_page", "2"),
        ("escalation_repeat", "1"),
    }
    # what still applies is kept as it was, not cancelled and made again
    assert after["sla_breached", "resolution"].id == before["sla_breached", "resolution"]
    assert len(after) == len(before) + 1


async def test_a_priority_change_replans_the_clocks_from_the_declaration(db: Database) -> None:
    number = await declared(db, "P3")
    paged = {(t.kind, t.key): t.id for t in await every_timer(db, number) if t.kind.startswith("escalation")}
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.change_priority(
            session, incident, "P1", policy=POLICY, actor="U0123ADMIN", now=NOW + 5 * M
        )
    assert await pending(db, number) == clocks(15 * M, 4 * H) | paging()
    every = await every_timer(db, number)
    old = [t for t in every if t.kind.startswith("sla") and t.due_at in {NOW + 90 * M, NOW + 2 * H}]
    assert old and all(t.cancelled_at == NOW + 5 * M for t in old)  # P3's response clock
    assert {(t.kind, t.key): t.id for t in every if t.kind.startswith("escalation")} == paged


async def test_due_finds_what_has_fallen_due_oldest_first(db: Database) -> None:
    first, second = await declared(db, "P3"), await declared(db, "P1")
    async with db.read() as session:
        assert await timers.due(session, now=NOW + 10 * M - timedelta(seconds=1), limit=10) == []
        at_ten = await timers.due(session, now=NOW + 10 * M, limit=10)  # due at the moment itself
        at_twelve = await timers.due(session, now=NOW + 12 * M, limit=10)
        oldest = await timers.due(session, now=NOW + 12 * M, limit=1)
    assert [number for _, number in at_ten] == [first, second]  # both re-page level 1 at 10m
    assert [number for _, number in at_twelve] == [first, second, second]  # P1's warning at 11m15s
    assert oldest == at_ten[:1]
    async with db.read() as session:
        kinds = {t.id: t.kind for t in await timers.pending(session)}
    assert [kinds[timer_id] for timer_id, _ in at_twelve] == [
        "escalation_repeat",
        "escalation_repeat",
        "sla_warning",
    ]


async def test_firing_stamps_the_incident_and_plans_what_comes_next(db: Database) -> None:
    number = await declared(db, "P1")
    fired = await sweep(db, NOW + 15 * M)  # as if nothing had run since the declaration
    assert fired == [
        ("escalation_repeat", "1", "escalation"),
        ("sla_warning", "response", None),  # stale: its breach is due too, and says it all
        ("sla_breached", "response", "sla_breached"),
        ("escalation_page", "2", "escalation"),
    ]
    async with db.read() as session:
        incident = await session.get(Incident, number)
        timeline = await service.timeline(session, incident)
    assert (incident.response_warned_at, incident.response_breached_at) == (NOW + 15 * M, NOW + 15 * M)
    assert (incident.escalation_level, incident.level_paged_at) == (2, NOW + 15 * M)
    # the shipped level 2 pages schedule:platform: Alice's week (a Sunday, so no office-hours layer)
    assert [(e.kind, e.actor, e.to_value) for e in timeline if e.actor == SYSTEM_ACTOR][-4:] == [
        ("escalation", SYSTEM_ACTOR, "1"),
        ("sla_breached", SYSTEM_ACTOR, "response"),
        ("escalation", SYSTEM_ACTOR, "2"),
        ("paged_on_call", SYSTEM_ACTOR, "U0123ALICE"),
    ]
    assert incident.on_call_paged == {"2": ["U0123ALICE"]}
    assert await pending(db, number) == {
        ("sla_warning", "resolution", NOW + 3 * H),
        ("sla_breached", "resolution", NOW + 4 * H),
        ("escalation_page", "3", NOW + 45 * M),  # 30m after level 2 was due
        ("escalation_repeat", "2", NOW + 25 * M),  # 10m after it was paged
    }
    assert await sweep(db, NOW + 15 * M) == []


async def test_a_timer_claimed_twice_fires_once(db: Database) -> None:
    number = await declared(db, "P1")
    async with db.read() as session:
        due = [timer_id for timer_id, _ in await timers.due(session, now=NOW + 16 * M, limit=10)]
    async with db.write() as session:
        first = await timers.claim(session, ids=due, now=NOW + 16 * M)
    async with db.write() as session:
        again = await timers.claim(session, ids=due, now=NOW + 17 * M)
    assert sorted(c.id for c in first) == sorted(due) and again == []
    assert {t.fired_at for t in await every_timer(db, number) if t.id in due} == {NOW + 16 * M}


async def test_rounds_running_at_once_fire_each_timer_once(db: Database) -> None:
    numbers = [await declared(db, "P1") for _ in range(3)]
    rounds = await asyncio.gather(*(sweep(db, NOW + 16 * M) for _ in range(4)))
    fired = sorted(outcome for outcomes in rounds for outcome in outcomes)
    each = [
        ("escalation_page", "2", "escalation"),
        ("escalation_repeat", "1", "escalation"),
        ("sla_breached", "response", "sla_breached"),
        ("sla_warning", "response", None),
    ]
    assert fired == sorted(each * 3)
    async with db.read() as session:
        for number in numbers:
            incident = await session.get(Incident, number)
            timeline = await service.timeline(session, incident)
            assert [e.to_value for e in timeline if e.kind == "sla_breached"] == ["response"]


async def test_pending_timers_survive_a_restart(database_url: str) -> None:
    before = Database(database_url)
    try:
        await before.upgrade()
        number = await declared(before, "P1")
        planned = await pending(before, number)
    finally:
        await before.dispose()
    after = Database(database_url)  # a new process on the same database
    try:
        await after.upgrade()
        assert await pending(after, number) == planned
        assert [kind for kind, _, _ in await sweep(after, NOW + 12 * M)] == [
            "escalation_repeat",
            "sla_warning",
        ]
        async with after.read() as session:
            report = await health.report(session, now=NOW + 14 * M)
        assert report["timers"]["oldest_due_seconds"] is None  # nothing left overdue
        async with after.read() as session:
            report = await health.report(session, now=NOW + 16 * M)
        assert report["timers"]["oldest_due_seconds"] == 60.0  # the page and the breach, due at 15m
    finally:
        await after.dispose()


async def test_time_spent_resolved_moves_the_resolution_clock_on_reopen(db: Database) -> None:
    number = await declared(db, "P1")
    await act(db, number, Action.ACK, NOW + 5 * M)
    await act(db, number, Action.RESOLVE, NOW + 1 * H, **RESOLVE)
    resolved = await pending(db, number)
    assert resolved == {("pir_reminder", "", NOW + 1 * H + 24 * H)}  # P1's review is owed: no closing alone
    await act(db, number, Action.REOPEN, NOW + 5 * H, reason="back again")
    assert await pending(db, number) == {
        ("sla_warning", "resolution", NOW + 3 * H + 4 * H),
        ("sla_breached", "resolution", NOW + 4 * H + 4 * H),
        ("update_nudge", "", NOW + 5 * H + 30 * M),
    }


async def test_a_resolved_incident_with_no_review_owed_closes_by_itself_and_a_cancelled_one_has_no_timers(
    db: Database,
) -> None:
    resolved, cancelled = await declared(db, "P3"), await declared(db, "P3")
    await act(db, resolved, Action.ACK, NOW + 5 * M)
    await act(db, resolved, Action.RESOLVE, NOW + 1 * H, **RESOLVE)
    assert await pending(db, resolved) == {(timers.AUTO_CLOSE, "", NOW + 1 * H + 3 * 24 * H)}
    await act(db, cancelled, Action.ACK, NOW + 5 * M)  # Bob, its commander, may cancel it
    await act(db, cancelled, Action.CANCEL, NOW + 6 * M, reason="false alarm")
    assert await pending(db, cancelled) == set()


async def test_a_timer_of_no_incident_is_made_once_and_found_when_due(db: Database) -> None:
    monday = NOW + 2 * 24 * H
    for _ in range(2):  # as two processes would
        async with db.write() as session:
            await timers.plan_global(session, kind="digest", due_at=monday, now=NOW)
    async with db.read() as session:
        assert await timers.due_global(session, kind="digest", now=monday - M) == []
        found = await timers.due_global(session, kind="digest", now=monday)
        assert await timers.due(session, now=monday, limit=10) == []  # incidents' timers only
    assert [(t.kind, t.due_at, t.incident_number) for t in found] == [("digest", monday, None)]
    async with db.write() as session:
        assert len(await timers.claim(session, ids=[found[0].id], now=monday)) == 1
    async with db.read() as session:
        assert await timers.due_global(session, kind="digest", now=monday) == []
