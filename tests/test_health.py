"""store/health.py: what /healthz reports about messages held for an operator."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from bot.relay import HELD
from store import health, outbox
from store.db import Database
from store.operations import Post
from tests.conftest import postgres_connection

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _queue(db: Database, errors: list[str | None]) -> None:
    """One pending message per error (None: never tried), the last one given up on."""
    async with db.write() as session:
        rows = [
            outbox.enqueue(session, Post(text="x"), now=NOW, incident_number=None) for _ in [*errors, "gone"]
        ]
        await session.flush()
        for row, error in zip(rows, errors, strict=False):
            if error is not None:
                await outbox.retry_later(
                    session, message_id=row.id, error=error, at=NOW + timedelta(seconds=30)
                )
        await outbox.failed(session, message_id=rows[-1].id, error="token_revoked", now=NOW)


async def test_held_messages_are_counted_and_named_by_kind_of_pause(db: Database) -> None:
    """Pending messages whose last error waits for an operator are held; the token's error and the scope's
    are named apart (a failed message, or one waiting for a 5xx, is not held)."""
    await _queue(db, [None, "http_503", "missing_scope: chat.postMessage needs chat:write", "token_revoked"])
    async with db.read() as session:
        report = await health.report(session, now=NOW, held=HELD)
    assert report["held"] == {
        "messages": 2,
        "token": "token_revoked",
        "scope": "missing_scope: chat.postMessage needs chat:write",
    }
    assert report["outbox"]["backlog"] == 4 and report["outbox"]["failed"] == 1
    await _queue(db, ["invalid_auth_x"])  # not a token error, though it starts like one
    async with db.read() as session:
        assert (await health.report(session, now=NOW, held=HELD))["held"]["messages"] == 2


async def test_the_held_count_is_read_with_the_backlog_through_the_pending_index(db: Database) -> None:
    """/healthz runs on every load balancer poll: the held messages cost no statement of their own, and
    the report still reads the outbox only through its indexes."""
    statements: list[tuple[str, object]] = []
    for engine in db.engines:
        event.listen(
            engine, "before_cursor_execute", lambda _c, _cu, sql, params, *_: statements.append((sql, params))
        )
    async with db.read() as session:
        report = await health.report(session, now=NOW, held=HELD)
    assert report["held"] == {"messages": 0} and len(statements) == 3
    if db.is_sqlite:
        connection = sqlite3.connect(db.url.database)
        try:
            plans = [
                row[3]
                for sql, params in statements
                for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            ]
        finally:
            connection.close()
        assert all(" USING " in plan and "INDEX" in plan for plan in plans), plans
        return
    connection = await postgres_connection(db.url)
    try:
        await connection.execute("SET enable_seqscan = off")
        plans = [
            row[0] for sql, params in statements for row in await connection.fetch(f"EXPLAIN {sql}", *params)
        ]
    finally:
        await connection.close()
    assert not any("Seq Scan" in line for line in plans), plans
