"""store/db.py's contract, the same on SQLite and PostgreSQL: a write session is SQLAlchemy's own
AsyncSession, every change to an incident is one UPDATE checked against its version, a lost connection
fails one request only, and the domain modules know no engine."""

from __future__ import annotations

import ast
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from bot.config import load_policy
from store import service, timeline
from store.db import IDLE_PING, Database
from store.machine import Action
from store.models import Incident, State, TimelineEntry
from tests.conftest import postgres_connection

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BACKEND = text("SELECT pg_backend_pid()")
# Modules that may choose an engine: the database object, SQLite's engines, and the one home of the SQL
# that differs between the two. Every other store module is the domain's.
ENGINE_MODULES = {"db.py", "sqlite.py", "dialect.py"}
ENGINE_IMPORTS = ("asyncpg", "aiosqlite", "sqlite3", "sqlalchemy.dialects", "store.db", "store.sqlite")


async def _declare(db: Database, title: str = "Disk full") -> int:
    async with db.write() as session:
        change = await service.declare(session, policy=POLICY, title=title, reporter="U1", now=NOW)
        return change.incident.number


def _updates(db: Database) -> list[str]:
    statements: list[str] = []

    def seen(statement: str) -> None:
        if statement.lstrip().upper().startswith("UPDATE INCIDENTS"):
            statements.append(statement)

    db.trace(seen)
    return statements


async def test_sessions_are_sqlalchemys_own(db: Database) -> None:
    async with db.write() as session:
        assert isinstance(session, AsyncSession)
    async with db.read() as session:
        assert isinstance(session, AsyncSession)


async def test_a_write_session_deletes_refreshes_and_rolls_back_to_a_savepoint(db: Database) -> None:
    """What a use case may ask of its session works on both stores, not only what the store used so far."""
    number = await _declare(db)
    async with db.write() as session:
        incident = await session.get(Incident, number)
        incident.summary = "kept"
        await session.flush()
        savepoint = await session.begin_nested()
        incident.summary = "undone"
        await session.flush()
        await savepoint.rollback()
        await session.refresh(incident)
        assert incident.summary == "kept"
        query = select(TimelineEntry).where(TimelineEntry.incident_number == number)
        entries = list(await session.scalars(query))
        await session.delete(entries[0])
    async with db.read() as session:
        row = await session.get(Incident, number)
        left = await session.scalar(select(func.count()).select_from(TimelineEntry))
    assert row.summary == "kept" and left == len(entries) - 1


async def test_a_change_writes_only_the_changed_columns_and_bumps_the_version(db: Database) -> None:
    number = await _declare(db)
    statements = _updates(db)
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await service.apply(session, incident, Action.ACK, policy=POLICY, actor="U2", now=NOW)
        await session.flush()
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
            # between replicas; the version check is the mapper's second line of defence).
            table = Incident.__table__
            await session.execute(
                update(table).where(table.c.number == number).values(version=table.c.version + 1)
            )
            incident.state = State.INVESTIGATING
            await session.flush()
    async with db.read() as session:
        row = await session.scalar(select(Incident).where(Incident.number == number))
    assert row.state == State.TRIAGE and row.version == 1


async def test_each_statement_of_a_read_sees_what_was_committed_before_it(db: Database) -> None:
    async with db.read() as session:
        for expected in range(1, 4):
            await _declare(db, title=f"Outage {expected}")
            count = select(func.count()).select_from(Incident)
            assert (await session.execute(count)).scalar() == expected


async def _terminate(url: Any, pid: int) -> None:
    """End one server process from outside, as a PostgreSQL restart or failover would."""
    admin = await postgres_connection(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the process exits and its socket closes


async def test_connections_that_died_while_idle_are_replaced_not_handed_out(db: Database) -> None:
    """PostgreSQL: a server restart kills the pool's idle connections. One idle for a while is checked
    before it is handed out, and a dead one replaced: the next read and write succeed on new server
    processes."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite has no server connection to lose")
    number = await _declare(db)
    async with db.read() as first, db.read() as second:  # two connections, both idle after this
        pids = {(await first.execute(BACKEND)).scalar(), (await second.execute(BACKEND)).scalar()}
    for pid in pids:
        await _terminate(db.url, pid)
    await asyncio.sleep(IDLE_PING)  # idle long enough to be checked before it is handed out
    async with db.read() as session:
        assert (await session.execute(BACKEND)).scalar() not in pids
    async with db.write() as session:
        found = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await timeline.record(session, found, at=NOW, actor="U2", kind="note", text="after the restart")
        assert (await session.execute(BACKEND)).scalar() not in pids
    async with db.read() as session:
        notes = (await session.scalars(select(TimelineEntry.text).where(TimelineEntry.kind == "note"))).all()
    assert notes == ["after the restart"]


async def test_a_connection_lost_mid_transaction_fails_that_request_only(db: Database) -> None:
    """PostgreSQL: a connection lost under a write comes back as SQLAlchemy's OperationalError (which
    handlers answer), nothing of the transaction is kept, and the next request succeeds."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite has no server connection to lose")
    number = await _declare(db)
    with pytest.raises(exc.DBAPIError) as lost:
        async with db.write() as session:
            found = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
            await timeline.record(session, found, at=NOW, actor="U2", kind="note", text="lost")
            await _terminate(db.url, (await session.execute(BACKEND)).scalar())
            await session.execute(text("SELECT 1"))
    assert lost.value.connection_invalidated
    async with db.write() as session:
        found = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await timeline.record(session, found, at=NOW, actor="U2", kind="note", text="kept")
    async with db.read() as session:
        notes = (await session.scalars(select(TimelineEntry.text).where(TimelineEntry.kind == "note"))).all()
    assert notes == ["kept"]


async def test_postgresql_plans_each_statement_for_its_values(db: Database) -> None:
    """A queue table that grew since its statements were first prepared, and a search whose words differ
    from the first one's, are planned for what they are now: no generic plans, in writes and reads."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite keeps no plans between statements")
    show = text("SHOW plan_cache_mode")
    async with db.write() as session:
        assert (await session.execute(show)).scalar() == "force_custom_plan"
    async with db.read() as session:
        assert (await session.execute(show)).scalar() == "force_custom_plan"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_domain_modules_import_no_engine() -> None:
    """Use cases, timers, the outbox, reports and search know no driver and no engine module: what
    differs between SQLite and PostgreSQL is store/dialect.py's."""
    domain = [p for p in (ROOT / "store").glob("*.py") if p.name not in ENGINE_MODULES]
    assert len(domain) > 10
    offenders = {
        path.name: sorted(n for n in _imports(path) if n.startswith(ENGINE_IMPORTS)) for path in domain
    }
    assert {name: names for name, names in offenders.items() if names} == {}
