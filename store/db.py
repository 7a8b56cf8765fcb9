"""Engines, transactions and schema upgrades.

SQLite (store/sqlite.py): SQLAlchemy's synchronous engine and Session, run inline on the event loop's
thread behind `InlineSession`; WAL; one writer connection whose transactions start with BEGIN IMMEDIATE
(a deferred transaction that reads and then writes fails with "database is locked" and ignores
busy_timeout), taken here with an asynchronous wait; and a pool of readers.
PostgreSQL: asyncpg, one pool; reads run in autocommit. Write transactions and `rows()` use connections
kept checked out of the pool (store/pg.py's Kept); write transactions begin and end on asyncpg, and
marked statements run on it directly (store/pg.py). `read()` gives an AsyncSession.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from store import direct, pg, sqlite
from store.writeback import WriteSession

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
        background_checkpoints: bool = False,
    ) -> None:
        """`background_checkpoints`: SQLite's writer leaves checkpoints to `checkpoint()`, which the caller
        promises to run every second or so (tocsin serve does)."""
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self.memory = in_memory(url)
        self.lock_wait = lock_wait
        self._tracers: list[Callable[[str], None]] = []  # trace()
        if self.dialect == "sqlite":
            self._writer = sqlite.engine(
                self.url, writer=True, pool_size=1, checkpoints=background_checkpoints
            )
            self._reader = (
                self._writer if self.memory else sqlite.engine(self.url, writer=False, pool_size=pool_size)
            )
            self._writing = asyncio.Lock()  # this process's writers take turns on the one connection
            self._rows: Connection | None = None  # rows(): opened on first use
            self._held: Connection | None = None  # the writer's connection, kept checked out (_connection)
        else:
            # No pool_pre_ping: a round trip before every checkout (250-700 µs here). Connections idle for
            # more than IDLE_PING are pinged instead (_ping_if_idle); a busy pool's connections are in use.
            # Up to 2 × pool_size connections, all kept: an overflow connection is closed when it comes
            # back to a full pool, and under load the next checkout opened a new one (TLS negotiation,
            # start-up, statements prepared again: about 3% of a busy server's CPU).
            self._async_writer = create_async_engine(url, pool_size=2 * pool_size, max_overflow=0)
            event.listen(self._async_writer.sync_engine, "checkout", _ping_if_idle)
            event.listen(self._async_writer.sync_engine, "checkin", _note_checkin)
            # Reads share the pool but skip BEGIN/COMMIT, two round trips each: in READ COMMITTED every
            # statement takes its own snapshot anyway, so a read-only transaction would add nothing.
            self._async_reader = self._async_writer.execution_options(isolation_level="AUTOCOMMIT")
            # Write transactions are asyncpg's own (store/pg.py), on connections kept checked out in
            # autocommit, so SQLAlchemy sends no BEGIN or COMMIT besides; rows() uses them too.
            self._kept = pg.Kept(self._async_reader.sync_engine, size=pool_size, idle_ping=IDLE_PING)
            self._read = async_sessionmaker(self._async_reader, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def engines(self) -> list[Engine]:
        """The synchronous engines underneath, for event listeners (bench/ops.py counts statements)."""
        if not self.is_sqlite:
            return [self._async_writer.sync_engine]
        return [self._writer] if self._reader is self._writer else [self._writer, self._reader]

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on exit, rolled back on error."""
        if not self.is_sqlite:
            async with self._kept.connection() as connection:
                transaction = pg.Session(WriteSession(bind=connection, expire_on_commit=False), connection)
                try:
                    yield transaction  # type: ignore[misc]
                    await transaction.commit()
                except BaseException:
                    await transaction.rollback()
                    raise
                finally:
                    await transaction.close()
            return
        async with self._sqlite_transaction() as session:
            yield sqlite.InlineSession(session)  # type: ignore[misc]

    @asynccontextmanager
    async def _sqlite_transaction(self) -> AsyncIterator[Session]:
        """SQLite: this process's turn on the writer connection, and the write lock once no other process
        holds it; committed on exit, rolled back on error."""
        async with self._writing:
            session = await self._begin_immediate()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    async def _begin_immediate(self) -> Session:
        """A session holding SQLite's write lock; while another process holds it, wait without blocking."""
        deadline = time.monotonic() + self.lock_wait
        delay = 0.0005  # other processes hold the lock for a millisecond or two: ask again soon
        while True:
            session = WriteSession(bind=self._connection(), expire_on_commit=False)
            try:
                session.connection()  # BEGIN IMMEDIATE (store/sqlite.py)
                return session
            except sqlite3.OperationalError as error:
                session.close()
                self._release()  # the failed BEGIN left the Connection object half begun
                if not sqlite.busy(error) or time.monotonic() >= deadline:
                    raise exc.OperationalError("BEGIN IMMEDIATE", (), error) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.004)  # a failed BEGIN IMMEDIATE costs about 10 µs

    def _connection(self) -> Connection:
        """SQLite's one writer connection, checked out once and kept: each write transaction binds its
        session to it, which saves the pool's checkout, check-in and reset (about 40 µs a transaction).
        Only `_writing`'s holder uses it."""
        if self._held is None or self._held.closed or self._held.invalidated:
            self._held = self._writer.connect()
        return self._held

    def _release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        if not self.is_sqlite:
            async with self._read() as session:  # autocommit: no BEGIN, nothing to commit
                yield session
            return
        session = Session(self._reader, expire_on_commit=False)
        try:
            yield sqlite.InlineSession(session)  # type: ignore[misc]
        finally:
            session.close()

    @asynccontextmanager
    async def rows(self) -> AsyncIterator[Any]:
        """A connection for reads that want rows, not ORM objects: cheaper than a session (on SQLite,
        about 65 µs less per read). Offers `await connection.execute(statement, params)`; each statement
        sees the database as it is when it runs (no transaction spans two of them).

        On SQLite this process keeps one reader connection in autocommit for these reads. Statements run
        inline on the loop's thread, one after another, so they can share it: no checkout from the pool,
        no BEGIN and no ROLLBACK (a read went from 132 to 55 µs). Holding no transaction, it never holds
        back a checkpoint."""
        if not self.is_sqlite:  # a kept synchronous Connection (store/pg.py's Kept)
            async with self._kept.connection() as connection:
                yield pg.Rows(connection)
            return
        if self.memory:  # the one connection is the writer's; it may be inside a write transaction
            with self._reader.connect() as connection:
                yield sqlite.InlineConnection(connection)
            return
        if self._rows is None or self._rows.closed or self._rows.invalidated:
            self._rows = self._reader.connect().execution_options(isolation_level="AUTOCOMMIT")
        yield sqlite.InlineConnection(self._rows)

    def trace(self, callback: Callable[[str], None]) -> None:
        """Call `callback` with the SQL of each statement run from now on until dispose(), including those
        store/direct.py runs past SQLAlchemy (tests, bench/ops.py). Those are seen in any Database of this
        process: their runner does not know which one it serves."""
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", lambda _c, _cu, sql, *_: callback(sql))
        direct.TRACERS.append(callback)
        self._tracers.append(callback)

    async def checkpoint(self) -> None:
        """SQLite: move the WAL back into the database file, on a worker thread (see store/sqlite.py)."""
        if self.is_sqlite and not self.memory:
            await asyncio.to_thread(sqlite.checkpoint, self.url.database)

    async def ping(self) -> None:
        if self.is_sqlite:
            with self._reader.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return
        async with self._async_reader.connect() as connection:
            await connection.run_sync(lambda sync: sync.exec_driver_sql("SELECT 1"))

    async def refresh_statistics(self) -> list[str]:
        """PostgreSQL: ANALYZE this schema's tables that changed enough since their last analysis (see
        _STALE_TABLES); the tables analyzed. SQLite: nothing (its planner keeps no statistics to go stale).

        The per-incident lookups (an incident's pending timers on every change, its timeline, its queued
        messages) need their table's statistics to use their indexes. A table analyzed while it was nearly
        empty, and not since, is planned as if it still were: a sequential scan. With autovacuum off (as on
        this project's test machines) nothing analyzes it again: in process, an acknowledgement cost 4.0 ms
        over the first 1,000 clicks and 7.0 over the eighth, each click scanning every timer; analyzed after
        each 1,000, 3.5-4.0 ms over the first six. With autovacuum on, this does what its analyze would, at
        the same threshold: whichever looks first analyzes. Analyzing also makes every connection drop
        its cached plans for the table."""
        if self.is_sqlite:
            return []
        async with self._async_writer.begin() as connection:
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
        if self.is_sqlite:
            async with self._sqlite_transaction() as session:  # waits for another process's lock
                _upgrade(session.connection())
            return
        async with self._async_writer.begin() as connection:
            await connection.execute(text(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})"))
            await connection.run_sync(_upgrade)

    async def dispose(self) -> None:
        for callback in self._tracers:
            direct.TRACERS.remove(callback)
        self._tracers.clear()
        if not self.is_sqlite:
            await self._kept.close()
            await self._async_writer.dispose()
            return
        if self._rows is not None:
            self._rows.close()
            self._rows = None
        self._release()
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Before handing out a connection that sat idle, check that the server still answers (a restart or a
    failover leaves the pool full of dead connections). DisconnectionError makes the pool try a new one."""
    if time.monotonic() - record.info.get("idle_since", 0.0) < IDLE_PING:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        raise exc.DisconnectionError(f"idle connection is gone: {error}") from error


async def plan_afresh(session: AsyncSession) -> None:
    """On PostgreSQL, plan this transaction's statements for the tables as they are now.

    asyncpg prepares statements, and after five runs PostgreSQL may keep a generic plan costed with the
    statistics of that moment. A queue table that grew since (and that autovacuum has not analyzed, or
    that runs with autovacuum off) then keeps a plan made for a handful of rows: the outbox claim went
    from 25 ms to 24 s with 11,000 rows pending. Custom plans see the table's current size."""
    if isinstance(session, pg.Session):  # a write transaction of store/pg.py's: sent on asyncpg directly
        await session.set_local("plan_cache_mode", "force_custom_plan")
    elif session.bind.dialect.name == "postgresql":
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _upgrade(connection: Connection) -> None:
    from alembic import command  # alembic is heavy; only the upgrade path needs it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
