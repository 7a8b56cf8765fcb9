"""Engines, transactions and schema upgrades.

SQLite (store/sqlite.py, no worker thread): WAL, one writer connection whose transactions start with BEGIN
IMMEDIATE (a deferred transaction that reads and then writes fails with "database is locked" and ignores
busy_timeout), and a pool of readers.
PostgreSQL: one pool for both; reads run in autocommit.

On SQLite, sessions are opened and closed here rather than by `async_sessionmaker.begin()`, whose exit runs
the commit and close in a task of their own, shielded from cancellation (two tasks and several loop
iterations, about 180 µs per transaction here). Inline SQLite never suspends while committing or
closing, so there is nothing for a cancellation to interrupt. PostgreSQL keeps SQLAlchemy's shielded exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from store import sqlite

MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_LOCK = 0x70C5_1A  # pg advisory lock key, so replicas upgrade one at a time


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        lock_wait: float = sqlite.LOCK_WAIT,
        background_checkpoints: bool = False,
    ) -> None:
        """`background_checkpoints`: SQLite's writer leaves checkpoints to `checkpoint()`, which the caller
        promises to run every second or so (tocsin serve does)."""
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self.memory = self.dialect == "sqlite" and self.url.database in (None, "", ":memory:")
        if self.dialect == "sqlite":
            self._writer = sqlite.engine(
                self.url, writer=True, pool_size=1, lock_wait=lock_wait, checkpoints=background_checkpoints
            )
            self._reader = (
                self._writer if self.memory else sqlite.engine(self.url, writer=False, pool_size=pool_size)
            )
        else:
            self._writer = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            # Reads share the pool but skip BEGIN/COMMIT, two round trips each: in READ COMMITTED every
            # statement takes its own snapshot anyway, so a read-only transaction would add nothing.
            self._reader = self._writer.execution_options(isolation_level="AUTOCOMMIT")
        self._write = async_sessionmaker(self._writer, expire_on_commit=False)
        self._read = async_sessionmaker(self._reader, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on exit, rolled back on error."""
        if self.is_sqlite:
            session = self._write()
            try:
                async with session.begin():
                    yield session
            finally:
                await session.close()
        else:
            async with self._write.begin() as session:
                yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        if self.is_sqlite:
            session = self._read()
            try:
                yield session
            finally:
                await session.close()
        else:
            async with self._read.begin() as session:
                yield session

    async def checkpoint(self) -> None:
        """SQLite: move the WAL back into the database file, on a worker thread (see store/sqlite.py)."""
        if self.is_sqlite and not self.memory:
            await asyncio.to_thread(sqlite.checkpoint, self.url.database)

    async def ping(self) -> None:
        async with self._reader.connect() as connection:
            await connection.run_sync(lambda sync: sync.exec_driver_sql("SELECT 1"))

    async def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self._writer.begin() as connection:
            if not self.is_sqlite:
                await connection.execute(text(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})"))
            await connection.run_sync(_upgrade)

    async def dispose(self) -> None:
        await self._writer.dispose()
        if self.is_sqlite and self._reader is not self._writer:
            await self._reader.dispose()


async def plan_afresh(session: AsyncSession) -> None:
    """On PostgreSQL, plan this transaction's statements for the tables as they are now.

    asyncpg prepares statements, and after five runs PostgreSQL may keep a generic plan costed with the
    statistics of that moment. A queue table that grew since (and that autovacuum has not analyzed, or
    that runs with autovacuum off) then keeps a plan made for a handful of rows: the outbox claim went
    from 25 ms to 24 s with 11,000 rows pending. Custom plans see the table's current size."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _upgrade(connection: Connection) -> None:
    from alembic import command  # alembic is heavy; only the upgrade path needs it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
