"""The transition table, exhaustively: every state x action, through the real store and database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import load_policy
from store import actions, service
from store.db import Database
from store.errors import AlreadyAcknowledged, Forbidden, IllegalTransition, PirRequired
from store.machine import Action, allowed_actions
from store.models import Incident, State, TimelineEntry, Timer

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
ADMIN = "U0123ADMIN"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

# Written out from the issue, independently of store/machine.py.
EXPECTED = {
    (State.TRIAGE, Action.ACK): State.INVESTIGATING,
    (State.INVESTIGATING, Action.IDENTIFY): State.IDENTIFIED,
    (State.IDENTIFIED, Action.INVESTIGATE): State.INVESTIGATING,
    (State.IDENTIFIED, Action.MONITOR): State.MONITORING,
    (State.MONITORING, Action.INVESTIGATE): State.INVESTIGATING,
    **{
        (s, Action.RESOLVE): State.RESOLVED
        for s in (State.TRIAGE, State.INVESTIGATING, State.IDENTIFIED, State.MONITORING)
    },
    (State.RESOLVED, Action.REOPEN): State.INVESTIGATING,
    (State.RESOLVED, Action.CLOSE): State.CLOSED,
    (State.TRIAGE, Action.CANCEL): State.CANCELLED,
    (State.INVESTIGATING, Action.CANCEL): State.CANCELLED,
}
ARGS = {
    Action.RESOLVE: {"summary": "fixed", "cause": "capacity", "resolution": "restart"},
    Action.REOPEN: {"reason": "came back"},
    Action.CANCEL: {"reason": "false alarm"},
}


async def _incident_in(db: Database, state: State, *, priority: str = "P3") -> int:
    async with db.write() as session:
        change = await service.declare(
            session, policy=POLICY, title="Disk full", reporter="U1", now=NOW, priority=priority
        )
        incident = change.incident
        incident.state = state
        if state is not State.TRIAGE:
            incident.acknowledged_at, incident.acknowledged_by, incident.commander = NOW, "U1", "U1"
        return incident.number


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("action", list(Action))
async def test_every_state_and_action(db: Database, state: State, action: Action) -> None:
    number = await _incident_in(db, state)
    expected = EXPECTED.get((state, action))
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        if action is Action.ACK and state is not State.TRIAGE:
            with pytest.raises(AlreadyAcknowledged) as already:
                await service.apply(session, incident, action, policy=POLICY, actor=ADMIN, now=NOW)
            assert (already.value.by, already.value.at) == ("U1", NOW)
        elif expected is None:
            with pytest.raises(IllegalTransition) as refused:
                await service.apply(
                    session, incident, action, policy=POLICY, actor=ADMIN, now=NOW, **ARGS.get(action, {})
                )
            assert refused.value.state == state.value
            assert refused.value.allowed == [a.value for a in allowed_actions(state)]
            assert all((state, Action(a)) in EXPECTED for a in refused.value.allowed)
        else:
            change = await service.apply(
                session, incident, action, policy=POLICY, actor=ADMIN, now=NOW, **ARGS.get(action, {})
            )
            assert (change.before, change.after) == (state.value, expected.value)
    async with db.read() as session:
        incident = await session.get(Incident, number)
        entries = list(
            await session.scalars(select(TimelineEntry).where(TimelineEntry.incident_number == number))
        )
    assert incident.state == (expected or state)
    changes = [e for e in entries if e.kind == action.value]
    if expected is None:
        assert changes == []
    else:
        assert [(e.actor, e.from_value, e.to_value) for e in changes] == [
            (ADMIN, state.value, expected.value)
        ]
        assert changes[0].at == NOW


async def test_close_needs_pir_for_p1_until_marked_done(db: Database) -> None:
    number = await _incident_in(db, State.RESOLVED, priority="P1")
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        with pytest.raises(PirRequired):
            await service.apply(session, incident, Action.CLOSE, policy=POLICY, actor=ADMIN, now=NOW)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.pir_done(
            session, incident, "https://wiki.example.com/pir/1", policy=POLICY, actor=ADMIN, now=NOW
        )
        change = await service.apply(session, incident, Action.CLOSE, policy=POLICY, actor=ADMIN, now=NOW)
    assert change.after == "closed"


async def test_only_commander_or_admin_may_resolve(db: Database) -> None:
    number = await _incident_in(db, State.INVESTIGATING)  # commander U1
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        with pytest.raises(Forbidden) as refused:
            await service.apply(
                session,
                incident,
                Action.RESOLVE,
                policy=POLICY,
                actor="U_BOB",
                now=NOW,
                **ARGS[Action.RESOLVE],
            )
        assert refused.value.commander == "U1" and refused.value.admins == [ADMIN]
        change = await service.apply(
            session, incident, Action.RESOLVE, policy=POLICY, actor="U1", now=NOW, **ARGS[Action.RESOLVE]
        )
    assert change.after == "resolved"


async def test_ids_are_never_reused(db: Database) -> None:
    first = await _incident_in(db, State.TRIAGE)
    async with db.write() as session:
        await session.execute(TimelineEntry.__table__.delete())
        await session.execute(Timer.__table__.delete())
        await session.execute(Incident.__table__.delete())
    second = await _incident_in(db, State.TRIAGE)
    assert second > first


async def test_times_come_back_in_utc(db: Database) -> None:
    number = await _incident_in(db, State.TRIAGE)
    async with db.read() as session:
        incident = await session.get(Incident, number)
    assert incident.declared_at == NOW and incident.declared_at.tzinfo is not None


def test_every_action_has_an_effect() -> None:
    assert set(service.EFFECTS) == set(Action)


# What each legal move's Change says, written out independently of store/service.py's effect table; the
# text it was given is kept stripped.
PADDED = {
    Action.RESOLVE: {"summary": " fixed ", "cause": "capacity", "resolution": "restart"},
    Action.REOPEN: {"reason": " came back"},
    Action.CANCEL: {"reason": "false alarm "},
}
CHANGE_TEXT = {Action.RESOLVE: "fixed", Action.REOPEN: "came back", Action.CANCEL: "false alarm"}


@pytest.mark.parametrize(("state", "action"), list(EXPECTED))
async def test_each_move_reports_its_change(db: Database, state: State, action: Action) -> None:
    number = await _incident_in(db, state)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        change = await service.apply(
            session, incident, action, policy=POLICY, actor=ADMIN, now=NOW, **PADDED.get(action, {})
        )
    assert change.incident is incident
    assert (change.kind, change.actor, change.before, change.after) == (
        action.value,
        ADMIN,
        state.value,
        EXPECTED[(state, action)].value,
    )
    assert change.text == CHANGE_TEXT.get(action)
    assert change.extra == ({"open_actions": []} if action is Action.CLOSE else {})


async def test_close_lists_the_open_action_items(db: Database) -> None:
    number = await _incident_in(db, State.RESOLVED)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        for text in ("Add an alert", "Grow the disk"):
            await actions.add(
                session,
                incident,
                owner="U2",
                text=text,
                due=date(2026, 12, 1),
                policy=POLICY,
                actor="U1",
                now=NOW,
            )
        await actions.complete(session, incident, 1, policy=POLICY, actor="U2", now=NOW)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        change = await service.apply(session, incident, Action.CLOSE, policy=POLICY, actor=ADMIN, now=NOW)
    assert change.extra == {
        "open_actions": [{"number": 2, "owner": "U2", "text": "Grow the disk", "due": "2026-12-01"}]
    }
