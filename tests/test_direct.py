"""store/direct.py: on SQLite, marked statements run on sqlite3 directly and must store and read exactly
what SQLAlchemy would. Each check writes or reads one way and compares with the other."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.dialects import sqlite as sqlite_dialect

from bot.config import load_policy
from store import direct, outbox, service, timeline, timers
from store.db import Database
from store.models import Incident, OutboxMessage, TimelineEntry, Timer

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
NOW = datetime(2026, 11, 22, 12, 0, 30, 123456, tzinfo=UTC)


@pytest.fixture
async def lite(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'direct.db'}")
    await database.upgrade()
    yield database
    await database.dispose()


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


async def test_rows_read_directly_equal_what_sqlalchemy_reads(lite: Database) -> None:
    incident = await _declare(lite)
    by_number = service._LOOKUPS["view"][0]
    assert direct.marked(by_number)
    async with lite.rows() as connection:
        fast = (await connection.execute(by_number, {"number": incident.number})).first()
        slow = connection.sync_connection.execute(by_number, {"number": incident.number}).first()
        assert fast._asdict() == slow._asdict()
        assert fast.declared_at == NOW and fast.title == "Checkout <!channel> & more"
        # the channel lookup carries its own LIMIT value
        by_channel = service._LOOKUPS["view"][1]
        assert [
            r._asdict() for r in await connection.execute(by_channel, {"channel": incident.channel_id})
        ] == [
            r._asdict()
            for r in connection.sync_connection.execute(by_channel, {"channel": incident.channel_id})
        ]
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
