"""SQLite on the event loop's own thread.

aiosqlite runs every cursor call (execute, fetch, description, close, commit) on a worker thread and
wakes the event loop for each answer: about nine thread hops and twenty loop iterations for one
primary-key SELECT, 1.2 ms of main-thread CPU, while SQLite itself answers in 20 µs. So Tocsin
drives the standard `sqlite3` module directly from SQLAlchemy's asyncio layer: the dialect below is
pysqlite marked as async, which makes AsyncEngine run each statement inline in its greenlet.

That is only safe because nothing here waits on SQLite's locks while holding the loop:
- readers use WAL snapshots, which never wait on writers;
- the one writer connection opens its transactions with `BEGIN IMMEDIATE` and `busy_timeout=0`,
  and when another process holds the write lock it retries *asynchronously* (`begin_immediate`),
  so the loop keeps serving while it waits;
- in `tocsin serve`, the writer does not checkpoint the WAL when it commits (an fsync, now and then long
  after a burst of writes, would stall the loop): `checkpoint()` runs every second on a worker thread
  instead. Other processes (the CLI, scripts) keep SQLite's own checkpoints.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from sqlalchemy import event, exc, pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_only

DRIVER = "tocsin_inline"
LOCK_WAIT = 30.0  # seconds a writer waits for another process's write lock before giving up


class _Cursor:
    """A sqlite3 cursor whose rows are fetched at execute time, as SQLAlchemy's asyncio layer expects."""

    __slots__ = ("_cursor", "_rows", "_at")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self._rows: list[Any] = []
        self._at = 0

    def __getattr__(self, name: str) -> Any:  # description, rowcount, lastrowid, arraysize
        return getattr(self._cursor, name)

    def execute(self, operation: str, parameters: Any = ()) -> _Cursor:
        self._cursor.execute(operation, parameters)
        self._buffer()
        return self

    def executemany(self, operation: str, seq_of_parameters: Any) -> _Cursor:
        self._cursor.executemany(operation, seq_of_parameters)
        self._buffer()
        return self

    def _buffer(self) -> None:
        self._rows = self._cursor.fetchall() if self._cursor.description else []
        self._at = 0

    def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchmany(self, size: int | None = None) -> list[Any]:
        end = self._at + (size or self._cursor.arraysize)
        rows, self._at = self._rows[self._at : end], min(end, len(self._rows))
        return rows

    def fetchall(self) -> list[Any]:
        rows, self._at = self._rows[self._at :], len(self._rows)
        return rows

    def close(self) -> None:
        self._rows = []
        self._cursor.close()

    async def _async_soft_close(self) -> None:
        """Rows are already buffered; nothing to wait for."""


class _Connection:
    """A sqlite3 connection handing out buffering cursors; everything else passes through."""

    __slots__ = ("driver_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.driver_connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self.driver_connection, name)

    @property
    def isolation_level(self) -> str | None:
        return self.driver_connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self.driver_connection.isolation_level = value

    def cursor(self) -> _Cursor:
        return _Cursor(self.driver_connection.cursor())


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, run by AsyncEngine without a worker thread."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        return _Connection(super().connect(*cargs, **cparams))

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool if cls._is_url_file_db(url) else pool.StaticPool


def begin_immediate(raw: sqlite3.Connection, *, wait: float) -> None:
    """Take the write lock; while another process holds it, yield to the event loop and retry."""
    deadline = time.monotonic() + wait
    delay = 0.001
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise exc.OperationalError("BEGIN IMMEDIATE", (), error) from error
        await_only(asyncio.sleep(delay))
        delay = min(delay * 2, 0.05)


def engine(
    url: URL, *, writer: bool, pool_size: int, lock_wait: float = LOCK_WAIT, checkpoints: bool = False
) -> AsyncEngine:
    """An AsyncEngine on `url` (any sqlite driver name) that runs statements inline."""
    if DRIVER not in registry.impls:
        registry.register(f"sqlite.{DRIVER}", __name__, "InlineSQLiteDialect")
    memory = url.database in (None, "", ":memory:")
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if not memory:
        options.update(pool_size=pool_size, max_overflow=0, pool_timeout=60)
    created = create_async_engine(url.set(drivername=f"sqlite+{DRIVER}"), **options)

    @event.listens_for(created.sync_engine, "connect")
    def on_connect(wrapper: _Connection, _record: Any) -> None:
        dbapi_connection = wrapper.driver_connection
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        dbapi_connection.execute("PRAGMA busy_timeout=30000")  # for the one-time WAL switch below
        if not memory:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        # Readers never wait in WAL mode; the writer waits in begin_immediate, off the loop.
        dbapi_connection.execute(f"PRAGMA busy_timeout={0 if writer and not memory else 5000}")
        if checkpoints and writer and not memory:  # the WAL is copied back (with an fsync) by checkpoint()
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    @event.listens_for(created.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        raw = connection.connection.dbapi_connection.driver_connection
        if writer:
            begin_immediate(raw, wait=lock_wait)
        else:
            raw.execute("BEGIN")

    return created


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
