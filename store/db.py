"""Engines, transactions and schema upgrades: plain SQLAlchemy 2 asyncio sessions on both stores.

- `write()`: an AsyncSession in one transaction, committed on exit, rolled back on error.
- `read()`: an AsyncSession for reads (in autocommit: each statement sees what was committed before it).
- SQLite (store/sqlite.py): aiosqlite, WAL, one writer connection per process whose transactions start
  with BEGIN IMMEDIATE, and a pool of readers. An in-memory URL gets a private temporary file, so that
  readers and the writer see one database without sharing a connection.
- PostgreSQL: asyncpg, one pool; reads run in autocommit (each statement takes its own snapshot in READ
  COMMITTED, so a read-only transaction would add two round trips and nothing else).

Store-specific SQL lives in store/dialect.py; nothing outside this module and store/sqlite.py picks an
engine.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from store import sqlite

MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_LOCK = 0x70C5_1A  # pg advisory lock key, so replicas upgrade one at a time
STATISTICS_LOCK = 0x70C5_1B  # pg advisory lock key: one replica at a time refreshes statistics
# This schema's tables whose rows changed by more than 50 and a tenth since they were last analyzed: the
# threshold at which autovacuum would analyze them, had it the chance.
_STALE_TABLES = text(
    "SELECT s.relname FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid"
    " WHERE s.schemaname = current_schema() AND s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)"
    " ORDER BY s.relname"
)


IDLE_PING = 1.0  # seconds: a PostgreSQL connection idle longer than this is pinged before use


def in_memory(url: str) -> bool:
    """An in-memory SQLite database: private to its process."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        lock_wait: float = sqlite.LOCK_WAIT,
        custom_plans: bool = True,
    ) -> None:
        """`lock_wait`: seconds a SQLite writer waits for another process's write lock.
        `custom_plans`: PostgreSQL plans each statement for the tables as they are when it runs, never
        with a prepared statement's generic plan (see _server_settings)."""
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self.memory = in_memory(url)
        self.lock_wait = lock_wait
        self._scratch: str | None = None  # in-memory SQLite: the temporary directory behind it
        self._writing: asyncio.Lock | None = None  # SQLite: this process's writers take turns
        if self.dialect == "sqlite":
            self._writer, self._reader = self._sqlite_engines(pool_size)
            self._writing = asyncio.Lock()
        else:
            self._writer = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                connect_args={"server_settings": _server_settings(custom_plans)},
            )
            # A restart or a failover leaves the pool full of dead connections: one idle for IDLE_PING
            # seconds or more is pinged before it is handed out. A busy pool's connections are in use,
            # so pinging them all (pool_pre_ping) would cost every request a round trip for nothing.
            event.listen(self._writer.sync_engine, "checkout", _ping_if_idle)
            event.listen(self._writer.sync_engine, "checkin", _note_checkin)
            self._reader = self._writer.execution_options(isolation_level="AUTOCOMMIT")
        self._write_session = async_sessionmaker(self._writer, expire_on_commit=False)
        self._read_session = async_sessionmaker(self._reader, expire_on_commit=False)

    def _sqlite_engines(self, pool_size: int) -> tuple[Any, Any]:
        url = self.url
        if self.memory:
            self._scratch = tempfile.mkdtemp(prefix="tocsin-")
            url = url.set(database=str(Path(self._scratch) / "memory.db"))
        writer = sqlite.engine(url, pool_size=1, lock_wait=lambda: self.lock_wait)
        reader = sqlite.engine(url, pool_size=pool_size)
        return writer, reader

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def engines(self) -> list[Engine]:
        """The synchronous engines underneath, for event listeners (bench/ops.py counts statements)."""
        if not self.is_sqlite:
            return [self._writer.sync_engine]
        return [self._writer.sync_engine, self._reader.sync_engine]

    def _turn(self) -> AbstractAsyncContextManager[Any]:
        """SQLite: this process's turn at the one writer connection; PostgreSQL: nothing to wait for."""
        return self._writing if self._writing is not None else nullcontext()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on exit, rolled back on error."""
        async with self._turn(), self._write_session() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_session() as session:
            yield session

    def trace(self, callback: Callable[[str], None]) -> None:
        """Call `callback` with the SQL of each statement run from now on until dispose() (tests,
        bench/ops.py)."""
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", lambda _c, _cu, sql, *_: callback(sql))

    async def ping(self) -> None:
        async with self._reader.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def refresh_statistics(self) -> list[str]:
        """PostgreSQL: ANALYZE this schema's tables that changed enough since their last analysis (see
        _STALE_TABLES); the tables analyzed. SQLite: nothing (its planner keeps no statistics to go stale).

        The per-incident lookups (an incident's pending timers on every change, its timeline, its queued
        messages) need their table's statistics to use their indexes. A table analyzed while it was nearly
        empty, and not since, is planned as if it still were: a sequential scan, slower with every row
        added. With autovacuum off nothing analyzes it again; with autovacuum on, this does what its
        analyze would, at the same threshold: whichever looks first analyzes."""
        if self.is_sqlite:
            return []
        async with self._writer.begin() as connection:
            locked = await connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": STATISTICS_LOCK}
            )
            if not locked:  # another replica is at it
                return []
            stale = list((await connection.scalars(_STALE_TABLES)).all())
            quote = connection.dialect.identifier_preparer.quote
            for table in stale:
                await connection.execute(text(f"ANALYZE {quote(table)}"))
        return stale

    async def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self._turn(), self._writer.begin() as connection:
            if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already keeps other processes out
                await connection.execute(text(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})"))
            await connection.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self.is_sqlite:
            await self._reader.dispose()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """The pool's checkout event: a connection that sat idle is asked whether the server still answers;
    DisconnectionError makes the pool replace it (SQLAlchemy's documented pessimistic disconnect check)."""
    if time.monotonic() - record.info.get("idle_since", 0.0) < IDLE_PING:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        raise exc.DisconnectionError(f"idle connection is gone: {error}") from error


def _server_settings(custom_plans: bool) -> dict[str, str]:
    """PostgreSQL settings for every connection. asyncpg prepares statements, and after five runs
    PostgreSQL may keep a generic plan costed with the statistics of that moment; a queue table that grew
    since (and that autovacuum has not analyzed) then keeps a plan made for a handful of rows, and a search
    keeps the plan of its first words. Custom plans see the tables and the values as they are."""
    return {"plan_cache_mode": "force_custom_plan"} if custom_plans else {}


def _upgrade(connection: Connection) -> None:
    from alembic import command  # alembic is heavy; only the upgrade path needs it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
