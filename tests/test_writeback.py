"""store/writeback.py: a changed incident is written with one Core UPDATE of its changed columns, checked
against its version as the mapper's own UPDATE would be, and left in the session clean."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm.exc import StaleDataError

from bot.config import load_policy
from store import service
from store.db import Database
from store.machine import Action
from store.models import Incident, State

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def _declare(db: Database) -> int:
    async with db.write() as session:
        change = await service.declare(session, policy=POLICY, title="Disk full", reporter="U1", now=NOW)
        return change.incident.number


def _updates(db: Database) -> list[str]:
    statements: list[str] = []

    def seen(statement: str) -> None:
        if statement.lstrip().upper().startswith("UPDATE INCIDENTS"):
            statements.append(statement)

    db.trace(seen)
    return statements


async def test_a_change_writes_only_the_changed_columns_once_and_bumps_the_version(db: Database) -> None:
    number = await _declare(db)
    statements = _updates(db)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, Action.ACK, policy=POLICY, actor="U2", now=NOW)
        assert incident not in session.sync_session.dirty  # written before the timeline INSERT; clean since
        incident.summary = "more"  # a later change in the same transaction is written too
    assert len(statements) == 2
    assert "title" not in statements[0] and "acknowledged_by" in statements[0]
    assert "summary" in statements[1] and "acknowledged_by" not in statements[1]
    async with db.read() as session:
        row = await session.scalar(select(Incident).where(Incident.number == number))
    assert (row.state, row.acknowledged_by, row.commander, row.summary) == (
        State.INVESTIGATING,
        "U2",
        "U2",
        "more",
    )
    assert row.version == 3 and row.title == "Disk full"


async def test_a_stale_version_is_refused_and_nothing_is_written(db: Database) -> None:
    number = await _declare(db)
    with pytest.raises(StaleDataError):
        async with db.write() as session:
            incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
            # Someone else's write moved the row on since it was loaded (the lock makes this impossible
            # between replicas; the version check is the mapper's own second line of defence).
            table = Incident.__table__
            await session.execute(
                update(table).where(table.c.number == number).values(version=table.c.version + 1)
            )
            incident.state = State.INVESTIGATING
            await session.flush()
    async with db.read() as session:
        row = await session.scalar(select(Incident).where(Incident.number == number))
    assert row.state == State.TRIAGE and row.version == 1
