"""SQLite on the event loop's own thread, through SQLAlchemy's synchronous Session.

SQLite answers a primary-key SELECT in about 20 µs. Through aiosqlite, every cursor call (execute, fetch,
description, close, commit) went to a worker thread and woke the loop for its answer: 1.2 ms. Through
SQLAlchemy's asyncio layer run inline, the greenlet switch per call and the connection checkout and close
(each in a task of its own) still cost 400-600 µs per session. So on SQLite, Tocsin uses SQLAlchemy's
synchronous engine and Session directly, on the loop's thread, behind `InlineSession`, which offers the
AsyncSession methods the store uses (`await session.execute(...)` and so on): a primary-key read through
the ORM costs about 240 µs, Core about 80 µs.

That is only safe because nothing here waits on SQLite's locks while holding the loop:
- readers use WAL snapshots, which never wait on writers;
- the one writer connection opens its transactions with `BEGIN IMMEDIATE` and `busy_timeout=0`; when
  another process holds the write lock, `Database.write()` retries *asynchronously*, so the loop keeps
  serving while it waits, and an asyncio lock queues this process's own writers for the connection;
- in `tocsin serve`, the writer does not checkpoint the WAL when it commits (an fsync, now and then long
  after a burst of writes, would stall the loop): `checkpoint()` runs every second on a worker thread
  instead. Other processes (the CLI, scripts) keep SQLite's own checkpoints.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event, pool
from sqlalchemy.engine import URL, Connection
from sqlalchemy.orm import Session

from store import direct

LOCK_WAIT = 30.0  # seconds a writer waits for another process's write lock before giving up


def busy(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def engine(url: URL, *, writer: bool, pool_size: int, checkpoints: bool = False) -> Engine:
    """A synchronous engine on `url` (any sqlite driver name), for use inline on the event loop.

    The writer's pool holds its one connection (Database.write() queues for it with an asyncio lock, so a
    checkout never blocks the thread); readers' pools grow past `pool_size` rather than block."""
    memory = url.database in (None, "", ":memory:")
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if memory:
        options["poolclass"] = pool.StaticPool
    else:
        options.update(pool_size=pool_size, max_overflow=0 if writer else -1, pool_timeout=0.1)
    created = create_engine(url.set(drivername="sqlite+pysqlite"), **options)

    @event.listens_for(created, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        dbapi_connection.execute("PRAGMA busy_timeout=30000")  # for the one-time WAL switch below
        if not memory:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        # Readers never wait in WAL mode; the writer waits in Database.write(), off the loop.
        dbapi_connection.execute(f"PRAGMA busy_timeout={0 if writer and not memory else 5000}")
        if checkpoints and writer and not memory:  # the WAL is copied back (with an fsync) by checkpoint()
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    @event.listens_for(created, "begin")
    def on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # each statement its own transaction (Database.rows())
        # Raises sqlite3.OperationalError (SQLITE_BUSY) at once when another process holds the write lock.
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if writer else "BEGIN")

    return created


class InlineSession:
    """The AsyncSession methods the store uses, over a synchronous Session (see the module's docstring).
    Each awaitable returns at once: the statement has already run."""

    __slots__ = ("sync_session",)

    def __init__(self, session: Session) -> None:
        self.sync_session = session

    @property
    def bind(self) -> Any:
        return self.sync_session.bind

    def add(self, instance: object) -> None:
        self.sync_session.add(instance)

    def _direct(self, statement: Any, params: Any) -> direct.Result:
        session = self.sync_session
        session.flush()  # what SQLAlchemy's autoflush does before a statement; nothing when clean
        return direct.run(session.connection(), statement, params)

    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if direct.runs_rows(statement, params, kw, self.sync_session.bind.dialect):
            return self._direct(statement, params)
        return self.sync_session.execute(statement, params, **kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if direct.loads_objects(statement, params, kw, self.sync_session.bind.dialect):
            row = self._direct(statement, params).first()
            return None if row is None else direct.adopt(self.sync_session, statement, row)
        return self.sync_session.scalar(statement, params, **kw)

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if direct.loads_objects(statement, params, kw, self.sync_session.bind.dialect):
            session = self.sync_session
            return [direct.adopt(session, statement, row) for row in self._direct(statement, params)]
        return self.sync_session.scalars(statement, params, **kw)

    async def get(self, entity: Any, ident: Any, **kw: Any) -> Any:
        return self.sync_session.get(entity, ident, **kw)

    async def flush(self, objects: Any = None) -> None:
        self.sync_session.flush(objects)


class InlineConnection:
    """AsyncConnection's `execute` over a synchronous Connection (Database.rows())."""

    __slots__ = ("sync_connection",)

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection

    async def execute(self, statement: Any, params: Any = None) -> Any:
        return direct.execute(self.sync_connection, statement, params)


def checkpoint(path: str) -> tuple[int, int]:
    """Copy what it can of the WAL back into the database without waiting for anyone (PASSIVE), on the
    calling thread with a connection of its own: run it off the event loop, as Database.checkpoint does.
    Returns (frames in the WAL, frames checkpointed)."""
    connection = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        _busy, frames, done = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return frames, done
    finally:
        connection.close()
