"""Report arithmetic against hand-computed figures, through the real use cases and database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import load_policy
from store import metrics, service
from store.machine import Action

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
ADMIN = "U0123ADMIN"
RESOLVE = {"summary": "fixed", "cause": "capacity", "resolution": "restart"}


async def incident(db, *, priority, category, at, steps=(), detected=None, breaches=()):
    async with db.write() as s:
        change = await service.declare(
            s,
            policy=POLICY,
            title=f"{priority} {category}",
            reporter="U1",
            now=at,
            priority=priority,
            category=category,
            detected=detected,
        )
        number = change.incident.number
    for offset, action, extra in steps:
        async with db.write() as s:
            found = await service.find(s, policy=POLICY, ref=f"INC-{number}", lock=True)
            if action == "escalate":
                await service.escalate(s, found, policy=POLICY, actor=ADMIN, now=at + offset)
            else:
                await service.apply(s, found, action, policy=POLICY, actor=ADMIN, now=at + offset, **extra)
    if breaches:
        async with db.write() as s:  # what the scheduler records when a clock runs out
            found = await service.find(s, policy=POLICY, ref=f"INC-{number}", lock=True)
            for clock in breaches:
                setattr(found, f"{clock}_breached_at", at + H)
    return number


async def test_report_matches_hand_computed_figures(db) -> None:
    ack, res = Action.ACK, Action.RESOLVE
    # INC-1 P1: acked after 5m, resolved after 1h
    await incident(
        db, priority="P1", category="database", at=NOW - 10 * D, steps=[(5 * M, ack, {}), (H, res, RESOLVE)]
    )
    # INC-2 P1, reopened: open 0-2h, resolved 2h-5h, open again 5h-6h: resolution time 3h
    await incident(
        db,
        priority="P1",
        category="network",
        at=NOW - 9 * D,
        steps=[
            (10 * M, ack, {}),
            (2 * H, res, RESOLVE),
            (5 * H, Action.REOPEN, {"reason": "again"}),
            (6 * H, res, RESOLVE),
        ],
    )
    # INC-3 P2: both clocks breached (ack after 45m > 30m, resolved after 10h > 8h), escalated to level 2
    await incident(
        db,
        priority="P2",
        category="database",
        at=NOW - 8 * D,
        steps=[(20 * M, "escalate", {}), (45 * M, ack, {}), (10 * H, res, RESOLVE)],
        breaches=("response", "resolution"),
    )
    # INC-4 P3: cancelled, so left out of every time figure
    await incident(
        db,
        priority="P3",
        category="database",
        at=NOW - 7 * D,
        steps=[(10 * M, Action.CANCEL, {"reason": "dup"})],
    )
    # INC-5: declared before the window, resolved inside it: not in the window
    await incident(
        db, priority="P3", category="database", at=NOW - 31 * D, steps=[(M, ack, {}), (2 * D, res, RESOLVE)]
    )
    # INC-6 P4: still open, detected 20m before declaring
    await incident(
        db,
        priority="P4",
        category="hardware",
        at=NOW - D,
        detected=(NOW - D - 20 * M).strftime("%Y-%m-%d %H:%M"),
    )
    # INC-7 P2: detected 1h before, acked after 20m, resolved after 3h
    await incident(
        db,
        priority="P2",
        category="database",
        at=NOW - 2 * D,
        detected=(NOW - 2 * D - H).strftime("%Y-%m-%d %H:%M"),
        steps=[(20 * M, ack, {}), (3 * H, res, RESOLVE)],
    )

    async with db.read() as s:
        report = await metrics.report(s, policy=POLICY, now=NOW, days=30)

    assert report["window_days"] == 30
    assert report["incidents"]["total"] == 6 and report["incidents"]["cancelled"] == 1
    assert report["incidents"]["by_priority"] == {"P1": 2, "P2": 2, "P3": 1, "P4": 1}
    assert report["incidents"]["by_category"] == {"database": 3 + 1, "network": 1, "hardware": 1}
    assert report["incidents"]["by_state"] == {"resolved": 4, "cancelled": 1, "triage": 1}
    # MTTA over 300, 600, 1200, 2700
    assert report["mtta_seconds"] == {"mean": 1200.0, "median": 900.0, "p90": 2250.0}
    # MTTR over 3600, 10800 (reopened: 2h + 1h), 10800, 36000
    assert report["mttr_seconds"] == {"mean": 15300.0, "median": 10800.0, "p90": 28440.0}
    # MTTD over 1200, 3600
    assert report["mttd_seconds"] == {"mean": 2400.0, "median": 2400.0, "p90": 3360.0}
    assert report["sla"] == {
        "P1": {"response_met": 1.0, "resolution_met": 1.0},
        "P2": {"response_met": 0.5, "resolution_met": 0.5},
        "P3": {"response_met": None, "resolution_met": None},
        "P4": {"response_met": None, "resolution_met": None},
    }
    assert report["reopen_rate"] == 0.2 and report["escalation_rate"] == 0.2
    assert report["open"] == [
        {"id": "INC-6", "priority": "P4", "state": "triage", "age_seconds": 86400.0, "sla": "ok"}
    ]
    assert report["repeats"] == [{"category": "database", "count": 3}]

    async with db.read() as s:
        week = await metrics.report(s, policy=POLICY, now=NOW, days=7)
    assert week["incidents"]["total"] == 3  # INC-4 (7d ago, on the edge), INC-6, INC-7
    assert week["mtta_seconds"] == {"mean": 1200.0, "median": 1200.0, "p90": 1200.0}


async def test_empty_window_gives_nulls(db) -> None:
    async with db.read() as s:
        report = await metrics.report(s, policy=POLICY, now=NOW, days=7)
    assert report["incidents"]["total"] == 0
    assert report["mtta_seconds"] == {"mean": None, "median": None, "p90": None}
    assert report["reopen_rate"] is None and report["open"] == [] and report["repeats"] == []
