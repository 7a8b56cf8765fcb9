"""store/db.py and store/sqlite.py: a SQLite writer that finds the write lock taken by another process
waits without blocking the loop, and gives up after the lock wait; UTC times, statistics, the health
report's indexes and the migrations, on both stores."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import DateTime, create_engine, event, func, insert, select, text
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from store import health
from store.db import Database
from store.models import Base, OutboxMessage, TimelineEntry, UTCDateTime
from tests.conftest import postgres_connection


async def test_sqlite_writer_waits_for_another_process_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.upgrade()
    other = sqlite3.connect(path, isolation_level=None)  # another process, as far as SQLite can tell
    other.execute("BEGIN IMMEDIATE")
    try:
        started = asyncio.Event()

        async def write() -> None:
            started.set()
            async with db.write() as session:
                await session.execute(select(func.count()).select_from(TimelineEntry))

        writer = asyncio.create_task(write())
        await started.wait()
        # While the writer waits for the lock, the loop keeps answering: reads and timers run.
        for _ in range(5):
            async with db.read() as session:
                assert await session.scalar(select(func.count()).select_from(TimelineEntry)) == 0
            await asyncio.sleep(0.02)
        assert not writer.done()
        other.execute("COMMIT")
        await asyncio.wait_for(writer, timeout=5)
    finally:
        other.close()
        await db.dispose()


async def test_sqlite_writer_gives_up_after_the_lock_wait(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    db = Database(f"sqlite+aiosqlite:///{path}", lock_wait=0.2)
    await db.upgrade()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with db.write() as session:
                await session.execute(select(func.count()).select_from(TimelineEntry))
    finally:
        other.execute("ROLLBACK")
        other.close()
        await db.dispose()


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 23, 13, 5, 18, 636980, tzinfo=UTC),
        datetime(2026, 11, 23, 13, 5, 18, tzinfo=UTC),  # no microseconds: still written with .000000
        datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),  # to UTC first
        datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    ],
)
def test_sqlite_utc_times_are_written_as_sqlalchemys_sqlite_datetime_writes_them(value: datetime) -> None:
    """UTCDateTime formats SQLite's text itself (faster); it must be exactly SQLAlchemy's DATETIME text, or
    comparisons between rows written before and after would go wrong."""
    dialect = sqlite_dialect.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(value.replace(tzinfo=None))


@pytest.mark.parametrize(
    "stored",
    [
        "2026-11-23 13:05:18.636980",  # as UTCDateTime and SQLAlchemy write it
        "2026-11-23 13:05:18",
        "2026-11-23T13:05:18.5",
        "2026-11-23 13:05:18.636980+05:30",  # an offset typed into the database by hand
        "2026-11-23",
        "0999-12-31 23:59:59.000001",
    ],
)
def test_sqlite_utc_times_are_read_as_sqlalchemys_sqlite_datetime_reads_them(stored: str) -> None:
    """UTCDateTime reads SQLite's text itself (faster); it must give the aware UTC datetime SQLAlchemy's
    DATETIME and UTCDateTime's process_result_value give, whatever the text's form."""
    dialect = sqlite_dialect.dialect()
    ours = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    theirs = DateTime().dialect_impl(dialect).result_processor(dialect, None)
    expected = UTCDateTime().process_result_value(theirs(stored), dialect)
    assert ours(stored) == expected and ours(stored).tzinfo is UTC
    assert ours(None) is None


async def test_refresh_statistics_analyzes_the_tables_that_changed_past_autovacuums_threshold(
    db: Database,
) -> None:
    """PostgreSQL: a table analyzed while nearly empty keeps sequential-scan plans for its per-incident
    lookups until it is analyzed again, which with autovacuum off nothing does. refresh_statistics analyzes
    the tables whose rows changed by more than 50 and a tenth since, and only those. SQLite: nothing to do."""
    if db.is_sqlite:
        assert await db.refresh_statistics() == []
        return
    now = datetime(2026, 11, 24, tzinfo=UTC)
    queued = {"incident_number": None, "created_at": now, "op": "post", "payload": {}, "attempts": 0}
    changed = text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'outbox'")

    async def queue(count: int, *, counted: int) -> int:
        """Queue `count` messages; the outbox's changes since its last analysis, once PostgreSQL has
        counted `counted` of them (or what it counted after 5 s)."""
        async with db.write() as session:
            await session.execute(
                insert(OutboxMessage.__table__), [{**queued, "next_attempt_at": now}] * count
            )
            await session.execute(text("SELECT pg_stat_force_next_flush()"))
        async with db.read() as session:
            for _ in range(100):  # the inserting connection reports its counts once idle
                seen = (await session.execute(changed)).scalar()
                if seen >= counted:
                    break
                await asyncio.sleep(0.05)
        return seen

    async with db.write() as session:
        await session.execute(text("ANALYZE"))  # as a fresh install analyzed empty
    assert await queue(30, counted=30) == 30
    assert "outbox" not in await db.refresh_statistics()  # 30 is under the threshold of 50
    assert await queue(100, counted=130) == 130
    assert "outbox" in await db.refresh_statistics()
    assert "outbox" not in await db.refresh_statistics()  # nothing changed since
    async with db.read() as session:
        analyzed = text(
            "SELECT last_analyze IS NOT NULL, n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'outbox'"
        )
        assert tuple((await session.execute(analyzed)).one()) == (True, 0)


async def test_the_health_report_reads_the_outbox_and_timers_through_their_indexes(db: Database) -> None:
    """/healthz runs on every load balancer poll, on every replica. The outbox keeps two weeks of delivered
    messages, so none of the report's statements may read it, or the timers, from end to end: each must
    be answered from an index (the failed count from ix_outbox_failed). PostgreSQL is asked with
    sequential scans priced out, since on tables this small it would rightly prefer them."""
    statements: list[tuple[str, object]] = []
    for engine in db.engines:
        event.listen(
            engine, "before_cursor_execute", lambda _c, _cu, sql, params, *_: statements.append((sql, params))
        )
    async with db.read() as session:
        report = await health.report(session, now=datetime.now(UTC))
    assert report["outbox"] == {
        "backlog": 0,
        "oldest_seconds": None,
        "failed": 0,
        "by_urgency": {},
        "most_urgent": None,
    }
    assert len(statements) == 3
    plans: list[str] = []
    if db.is_sqlite:
        connection = sqlite3.connect(db.url.database)
        try:
            for sql, params in statements:
                plans += [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        finally:
            connection.close()
        assert len(plans) == 3 and all(" USING " in plan and "INDEX" in plan for plan in plans), plans
        assert "ix_outbox_failed" in plans[2]
        return
    connection = await postgres_connection(db.url)
    try:
        await connection.execute("SET enable_seqscan = off")
        for sql, params in statements:
            plans += [row[0] for row in await connection.fetch(f"EXPLAIN {sql}", *params)]
    finally:
        await connection.close()
    assert not any("Seq Scan" in line for line in plans), plans
    assert any("ix_outbox_failed" in line for line in plans), plans


async def test_the_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    """Every table, column and index in store/models.py is made by a migration, and no migration makes one
    the models do not know, but for the full-text search each store builds its own way (SQLite's FTS5
    tables, PostgreSQL's GIN index), which only the migrations describe."""
    database = Database(database_url)
    await database.upgrade()
    await database.dispose()

    def outside_the_search(
        item: object, name: str | None, kind: str, _reflected: bool, _compare_to: object
    ) -> bool:
        return (
            not (kind == "table" and (name or "").startswith("incidents_fts"))
            and name != "ix_incidents_search_done"
        )

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"include_object": outside_the_search})
        return compare_metadata(context, Base.metadata)

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":  # the store runs SQLite's own driver, not an async one
        engine = create_engine(url.set(drivername="sqlite"))
        try:
            with engine.connect() as connection:
                assert differences(connection) == []
        finally:
            engine.dispose()
        return
    async_engine = create_async_engine(url)
    try:
        async with async_engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await async_engine.dispose()
