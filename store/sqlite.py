"""SQLite's engines: SQLAlchemy's asyncio engine over aiosqlite, so that every statement, every wait for
another process's write lock and every WAL checkpoint runs on aiosqlite's thread, never on the event loop.

- WAL: readers work from snapshots and never wait for the writer.
- Write transactions start with `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes
  fails with "database is locked" at once, whatever busy_timeout says, when another writer got in between.
  SQLite's own busy_timeout then makes BEGIN wait for another process's write lock, off the loop.
- Python's sqlite3 module would issue BEGIN itself, deferred, before the first write; it is turned off
  (`isolation_level = None`) and the engine's "begin" event sends the BEGIN, SQLAlchemy's documented recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

LOCK_WAIT = 30.0  # seconds a writer waits for another process's write lock before giving up
READ_WAIT = 5.0  # seconds a reader waits (only the switch to WAL mode can make it wait)


def engine(url: URL, *, pool_size: int, lock_wait: Callable[[], float] | None = None) -> AsyncEngine:
    """An asyncio engine on the database file at `url` (any sqlite driver name): the writer's when given
    `lock_wait` (how long its BEGIN IMMEDIATE waits for another process's lock, asked at each BEGIN), else
    a reader's. The writer's pool holds one connection: Database.write() queues this process's writers
    for it."""
    writer = lock_wait is not None
    created = create_async_engine(
        url.set(drivername="sqlite+aiosqlite"),
        pool_size=1 if writer else pool_size,
        max_overflow=0 if writer else pool_size,
        # Readers never begin a transaction (see below): nothing to roll back when one is given back, nor
        # when a read session closes (sqlite3 reports autocommit: its isolation_level is None). The writer
        # has the same isolation_level, but its BEGIN IMMEDIATE opens a transaction that must be rolled back.
        pool_reset_on_return="rollback" if writer else None,
        skip_autocommit_rollback=not writer,
    )

    @event.listens_for(created.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" event below sends BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(READ_WAIT * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # Readers send no BEGIN: each statement reads the database as it is when it runs, as PostgreSQL's
    # autocommit reads do, and no reader holds a snapshot that would keep a checkpoint from emptying the WAL.
    if lock_wait is not None:
        _begin_immediate(created, lock_wait)
    return created


def _begin_immediate(engine: AsyncEngine, lock_wait: Callable[[], float]) -> None:
    """The writer's transactions begin IMMEDIATE, waiting up to `lock_wait()` seconds for the lock."""

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        _wait_for_lock(connection, lock_wait())
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _wait_for_lock(connection: Connection, seconds: float) -> None:
    """Set how long BEGIN IMMEDIATE waits for another process's lock, when it differs from the last."""
    info = connection.connection.info
    if info.get("busy_timeout") != seconds:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={int(seconds * 1000)}")
        info["busy_timeout"] = seconds
