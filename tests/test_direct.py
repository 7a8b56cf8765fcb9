"""store/direct.py: marked statements run on the driver directly (sqlite3; asyncpg through store/pg.py)
and must store and read exactly what SQLAlchemy would. Each check writes or reads one way and compares
with the other, on both stores."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, exc, insert, select, text
from sqlalchemy.dialects import sqlite as sqlite_dialect

from bot.config import load_policy
from store import direct, outbox, service, timeline, timers
from store.db import Database
from store.models import Incident, OutboxMessage, State, TimelineEntry, Timer
from tests.conftest import postgres_connection

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, 30, 123456, tzinfo=UTC)


@pytest.fixture
async def lite(db: Database):
    """Each store (the conftest's `db`); named for when this file covered SQLite alone."""
    return db


def through_sqlalchemy(statement):
    """The same statement, unmarked: run by SQLAlchemy."""
    return statement.execution_options(tocsin_direct=False)


async def _declare(db: Database) -> Incident:
    async with db.write() as session:
        change = await service.declare(
            session, policy=POLICY, title="Checkout <!channel> & more", reporter="U1", now=NOW
        )
    return change.incident


async def test_rows_written_directly_read_back_through_the_orm_as_written(lite: Database) -> None:
    incident = await _declare(lite)
    seen: list[str] = []
    lite.trace(seen.append)
    payload = {"channel": "C1", "text": "é ✓ <b>", "blocks": [{"type": "section"}], "none": None}
    async with lite.write() as session:
        await timeline.record(session, incident, at=NOW, actor="U2", kind="note", text=None)
        await outbox.enqueue_all(session, [("post", payload)], now=NOW, incident_number=incident.number)
    # run past SQLAlchemy, and seen by trace() all the same
    assert any(s.startswith("INSERT INTO timeline") for s in seen)
    assert any(s.startswith("INSERT INTO outbox") for s in seen)
    async with lite.read() as session:
        entry = (await session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "note"))).one()
        message = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()))).first()
    assert (entry.at, entry.actor, entry.text, entry.from_value) == (NOW, "U2", None, None)
    assert entry.at.tzinfo is UTC
    assert message.payload == payload and message.attempts == 0 and message.next_attempt_at == NOW


async def test_a_new_incident_inserted_directly_is_stored_as_sqlalchemy_stores_it(lite: Database) -> None:
    incident = await _declare(lite)  # through the marked INSERT, which returns the new number
    table = Incident.__table__
    by_number = through_sqlalchemy(select(table).where(table.c.number == incident.number))
    async with lite.rows() as connection:
        values = (await connection.execute(by_number)).first()._asdict()
    del values["number"]
    values.update(similar=[{"id": "INC-9", "title": "é <!channel>", "summary": None}], impact="high")
    seen: list[str] = []
    lite.trace(seen.append)
    async with lite.write() as session:
        fast = (await session.execute(service._INSERT, values)).first().number
        slow = (await session.execute(through_sqlalchemy(service._INSERT), values)).scalar_one()
    assert sorted((fast, slow)) == [incident.number + 1, incident.number + 2]
    assert len([s for s in seen if s.startswith("INSERT INTO incidents")]) == 2
    async with lite.rows() as connection:
        rows = {
            r.number: r._asdict()
            for r in await connection.execute(
                through_sqlalchemy(select(table).where(table.c.number > incident.number))
            )
        }
    for row in rows.values():
        del row["number"]
    assert rows[fast] == rows[slow] and rows[fast]["similar"][0]["title"] == "é <!channel>"
    assert rows[fast]["declared_at"] == NOW and rows[fast]["state"] is State.TRIAGE


async def test_rows_read_directly_equal_what_sqlalchemy_reads(lite: Database) -> None:
    incident = await _declare(lite)
    by_number = service._LOOKUPS["view"][0]
    assert direct.marked(by_number)
    seen: list[str] = []
    lite.trace(seen.append)
    async with lite.rows() as connection:
        fast = (await connection.execute(by_number, {"number": incident.number})).first()
        assert isinstance(fast, tuple)  # direct.Plan's row, not SQLAlchemy's Row
        slow = (await connection.execute(through_sqlalchemy(by_number), {"number": incident.number})).first()
        assert fast._asdict() == slow._asdict()
        assert fast.declared_at == NOW and fast.title == "Checkout <!channel> & more"
        assert fast.declared_at.tzinfo is not None and fast.state is State.TRIAGE
        # the channel lookup carries its own LIMIT value
        by_channel = service._LOOKUPS["view"][1]
        channel = {"channel": incident.channel_id}
        assert [r._asdict() for r in await connection.execute(by_channel, channel)] == [
            r._asdict() for r in await connection.execute(through_sqlalchemy(by_channel), channel)
        ]
    assert len([s for s in seen if s.startswith("SELECT incidents.number")]) == 4
    async with lite.write() as session:
        pending = list(await session.execute(timers._PENDING_ROWS, {"number": incident.number}))
        objects = list(
            await session.scalars(
                select(Timer).where(Timer.incident_number == incident.number, Timer.cancelled_at.is_(None))
            )
        )
    assert sorted((r.id, r.kind, r.key, r.due_at) for r in pending) == sorted(
        (t.id, t.kind, t.key, t.due_at) for t in objects
    )
    assert pending and all(r.due_at.tzinfo is UTC for r in pending)


async def test_a_pending_orm_change_is_flushed_before_a_direct_statement(lite: Database) -> None:
    incident = await _declare(lite)
    async with lite.write() as session:
        session.add(
            Timer(incident_number=incident.number, kind="pir_reminder", key="x", due_at=NOW, created_at=NOW)
        )
        rows = list(await session.execute(timers._PENDING_ROWS, {"number": incident.number}))
    assert "pir_reminder" in {r.kind for r in rows}  # as SQLAlchemy's autoflush would have it


def test_an_insert_leaving_out_a_column_without_a_scalar_default_is_refused() -> None:
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", String, default=lambda: "now")
    )
    with pytest.raises(ValueError, match=r"t\.at needs a value"):
        direct.plan(insert(table), sqlite_dialect.dialect(), ["id"])
    assert direct.plan(insert(table), sqlite_dialect.dialect(), ["id", "at"]).names == ("id", "at")


async def test_an_incident_loaded_for_a_change_is_the_one_the_orm_would_load(lite: Database) -> None:
    """The locked load runs on the driver (sqlite3, asyncpg) and adopts the row into the session: it must
    hold exactly what the ORM loads, unchanged, and be the session's one object for that incident."""
    incident = await _declare(lite)
    ref = POLICY.public_id(incident.number)
    columns = [column.key for column in Incident.__table__.columns]
    async with lite.write() as session:
        found = await service.find(session, policy=POLICY, ref=ref, lock=True)
        assert await service.find(session, policy=POLICY, ref=ref, lock=True) is found
        assert not session.sync_session.dirty and found in session.sync_session
    async with lite.read() as session:
        loaded = await session.get(Incident, incident.number)
    assert {k: getattr(found, k) for k in columns} == {k: getattr(loaded, k) for k in columns}
    assert found.declared_at == NOW and found.state is State.TRIAGE and found.version == loaded.version


async def test_a_marked_statement_of_objects_through_execute_gives_rows_of_objects(lite: Database) -> None:
    """Only scalar() and scalars() adopt objects; execute() of such a statement is left to SQLAlchemy,
    whose rows hold the objects (not their columns)."""
    incident = await _declare(lite)
    async with lite.write() as session:
        row = (await session.execute(service._LOOKUPS["locked"][0], {"number": incident.number})).first()
        assert isinstance(row[0], Incident) and row[0].number == incident.number
        assert (
            await service.find(session, policy=POLICY, ref=POLICY.public_id(incident.number), lock=True)
            is row[0]
        )


def _through_sqlalchemy_log(db: Database) -> list[str]:
    """The SQL of each statement SQLAlchemy itself runs from now on (not those run past it)."""
    seen: list[str] = []
    for engine in db.engines:
        event.listen(engine, "before_cursor_execute", lambda _c, _cu, sql, *_: seen.append(sql))
    return seen


async def test_a_direct_statement_is_part_of_the_write_transaction(lite: Database) -> None:
    """Run past SQLAlchemy, yet inside its transaction: rolled back with it, committed with it."""
    incident = await _declare(lite)
    ref = POLICY.public_id(incident.number)
    through_sqlalchemy = _through_sqlalchemy_log(lite)
    with pytest.raises(RuntimeError):
        async with lite.write() as session:
            found = await service.find(session, policy=POLICY, ref=ref, lock=True)
            await timeline.record(session, found, at=NOW, actor="U2", kind="note", text="rolled back")
            raise RuntimeError("the use case failed after the insert")
    async with lite.write() as session:
        found = await service.find(session, policy=POLICY, ref=ref, lock=True)
        await timeline.record(session, found, at=NOW, actor="U2", kind="note", text="kept")
    assert not any(s.startswith("INSERT INTO timeline") for s in through_sqlalchemy)  # run directly
    async with lite.read() as session:
        notes = (await session.scalars(select(TimelineEntry.text).where(TimelineEntry.kind == "note"))).all()
    assert notes == ["kept"]


async def _terminate(url: Any, pid: int) -> None:
    """End one server process from outside, as a PostgreSQL restart or failover would."""
    admin = await postgres_connection(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the process exits and its socket closes


BACKEND = text("SELECT pg_backend_pid()")


async def test_kept_connections_that_died_while_idle_are_replaced_not_handed_out(
    lite: Database, mocker
) -> None:
    """PostgreSQL: a server restart kills the connections kept for writes and reads while they sit idle.
    One idle past the ping interval is pinged before it is handed out, and a dead one replaced: the next
    read and write succeed on new server processes, with no error for anyone."""
    if lite.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite has no server connection to lose")
    incident = await _declare(lite)
    ref = POLICY.public_id(incident.number)
    async with lite.rows() as first, lite.rows() as second:  # two connections kept, both idle after this
        pids = {(await first.execute(BACKEND)).scalar(), (await second.execute(BACKEND)).scalar()}
    assert len(pids) == 2
    for pid in pids:
        await _terminate(lite.url, pid)
    mocker.patch.object(lite._kept, "_idle_ping", 0.0)  # as if they had been idle for a while
    async with lite.rows() as connection:
        assert (await connection.execute(BACKEND)).scalar() not in pids
    async with lite.write() as session:
        found = await service.find(session, policy=POLICY, ref=ref, lock=True)
        await timeline.record(session, found, at=NOW, actor="U2", kind="note", text="after the restart")
        assert (await session.execute(BACKEND)).scalar() not in pids
    async with lite.read() as session:
        notes = (await session.scalars(select(TimelineEntry.text).where(TimelineEntry.kind == "note"))).all()
    assert notes == ["after the restart"]


async def test_a_connection_lost_under_a_direct_statement_fails_that_request_only(lite: Database) -> None:
    """PostgreSQL: a lost connection comes back as SQLAlchemy's OperationalError (which handlers answer),
    and the pool does not hand it out again: the next request, read or write, succeeds."""
    if lite.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite has no server connection to lose")
    incident = await _declare(lite)
    ref = POLICY.public_id(incident.number)
    by_number = service._LOOKUPS["view"][0]
    async with lite.rows() as connection:
        pid = (await connection.execute(BACKEND)).scalar()
        await _terminate(lite.url, pid)
        with pytest.raises(exc.OperationalError) as lost:
            await connection.execute(by_number, {"number": incident.number})
        assert lost.value.connection_invalidated
    async with lite.rows() as connection:
        assert (await connection.execute(by_number, {"number": incident.number})).first().title
        assert (await connection.execute(BACKEND)).scalar() != pid

    with pytest.raises(exc.OperationalError) as lost:
        async with lite.write() as session:
            found = await service.find(session, policy=POLICY, ref=ref, lock=True)
            pid = (await session.execute(BACKEND)).scalar()
            await _terminate(lite.url, pid)
            await timeline.record(session, found, at=NOW, actor="U2", kind="note", text="lost")
    assert lost.value.connection_invalidated
    async with lite.write() as session:
        found = await service.find(session, policy=POLICY, ref=ref, lock=True)
        await timeline.record(session, found, at=NOW, actor="U2", kind="note", text="kept")
        assert (await session.execute(BACKEND)).scalar() != pid
    async with lite.read() as session:
        notes = (await session.scalars(select(TimelineEntry.text).where(TimelineEntry.kind == "note"))).all()
    assert notes == ["kept"]
