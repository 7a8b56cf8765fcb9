"""PostgreSQL: write transactions and the statements every request makes, on asyncpg directly.

Through SQLAlchemy's asyncio layer a primary-key SELECT cost about 360 µs of CPU here (greenlet switches,
execution context, cursor adaptation, result wrapping), a transaction's BEGIN and COMMIT about 500 µs
more, and loading one incident through the ORM about 600 µs; on the same asyncpg connection alone, a
statement costs about 100 µs. So:

- A write transaction (`Session`) is asyncpg's own, over a synchronous ORM Session (no AsyncSession)
  bound to a connection kept checked out in autocommit (`Kept`), so SQLAlchemy sends no BEGIN or COMMIT
  of its own; `Session` sends BEGIN before the first statement and COMMIT (or ROLLBACK) at the end, and
  every statement, SQLAlchemy's or asyncpg's, runs inside it. If the end cannot be sent, the connection
  is invalidated, so none is handed out again inside a transaction.
- Statements marked with `direct.DIRECT` (store/direct.py: built once, compiled once by SQLAlchemy's
  compiler for this dialect, values through the same type processors) run on asyncpg: the view reads, the
  timeline, timer and outbox INSERTs, the read of an incident's timers, and the locked load of an
  incident (`service.find`), whose row becomes an Incident in the session as if the ORM had loaded it.
- A changed incident is written back (store/writeback.py's UPDATE, with its version check) on asyncpg
  before the next statement and before COMMIT, as SQLAlchemy's autoflush would; any other pending ORM
  change is flushed by SQLAlchemy.
- Display reads (`Rows`) run on a kept connection too, in autocommit.

A failure comes back as SQLAlchemy's exception (IntegrityError, else OperationalError), so handlers
answer it as before; when the connection is gone, it is invalidated, so the pool does not hand it out
again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session as SyncSession
from sqlalchemy.util import greenlet_spawn

from store import direct, writeback

T = TypeVar("T")
_FATAL = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def _translated(sql: str, driver: asyncpg.Connection, error: Exception) -> exc.DBAPIError:
    """asyncpg's error (or OSError, a timeout) as SQLAlchemy would raise it."""
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return exc.IntegrityError(sql, None, error)
    lost = driver.is_closed() or not isinstance(error, asyncpg.PostgresError) or isinstance(error, _FATAL)
    return exc.OperationalError(sql, None, error, connection_invalidated=lost)


async def _call(sql: str, driver: asyncpg.Connection, call: Awaitable[T]) -> T:
    try:
        return await call
    except Exception as error:
        raise _translated(sql, driver, error) from error


async def run(
    driver: asyncpg.Connection,
    dialect: Dialect,
    statement: Any,
    params: dict[str, Any] | list[dict[str, Any]],
    invalidate: Callable[[BaseException], Awaitable[Any]],
) -> direct.Result:
    """Run a marked statement on `driver`, in whatever transaction it is in; if that loses the connection,
    `invalidate` its SQLAlchemy connection before raising."""
    try:
        return await _run(driver, dialect, statement, params)
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            await invalidate(error)
        raise


async def _run(
    driver: asyncpg.Connection,
    dialect: Dialect,
    statement: Any,
    params: dict[str, Any] | list[dict[str, Any]],
) -> direct.Result:
    many = isinstance(params, list)
    if many and not params:
        return direct.Result([], 0)
    compiled = direct.planned(statement, dialect, params)
    if many:
        rows = [compiled.arguments(p) for p in params]  # type: ignore[union-attr]
        await _call(compiled.sql, driver, driver.executemany(compiled.sql, rows))
        return direct.Result([], len(params))
    arguments = compiled.arguments(params)  # type: ignore[arg-type]
    if compiled.record is not None:
        records = await _call(compiled.sql, driver, driver.fetch(compiled.sql, *arguments))
        return direct.Result([compiled.row(r) for r in records], len(records))
    status = await _call(compiled.sql, driver, driver.execute(compiled.sql, *arguments))
    return direct.Result([], int(status.rsplit(" ", 1)[-1]))  # "UPDATE 1", "INSERT 0 1"


class Kept:
    """Connections kept checked out of the pool, in autocommit, for write transactions and `rows()`.

    Checking a connection out of SQLAlchemy's pool and back cost about 110 µs of CPU a request (the
    checkout, the autocommit characteristic set and reset, the check-in's reset), and an AsyncSession
    with its greenlet hops about 200 µs more. So up to `size` connections stay checked out here, each
    handed to one user at a time. One idle for `idle_ping` seconds or more is pinged before it is handed
    out, as the pool's checkout does (a restart leaves dead connections behind); one that failed, was
    cancelled mid-statement or is still inside a transaction is invalidated, never handed out again.
    When all are in use, users wait in turn, first come first served: one coming back goes straight to the
    longest waiter, so no newcomer takes it ahead of them (which lengthens the tail of latencies). One
    that has waited `patience` seconds gets one of the pool's own instead, checked in when done, so a
    user holding one connection and asking for another cannot deadlock."""

    def __init__(self, engine: Any, *, size: int, idle_ping: float, patience: float = 1.0) -> None:
        self._engine = engine  # synchronous (AsyncEngine.sync_engine), with isolation_level AUTOCOMMIT
        self._size, self._idle_ping, self._patience = size, idle_ping, patience
        self._idle: list[tuple[Connection, float]] = []
        # Each waiter's future gets (connection, since) handed over, None (a place came free, try again) or
        # False (out of patience).
        self._waiters: collections.deque[asyncio.Future[tuple[Connection, float] | None | bool]] = (
            collections.deque()
        )
        self._count = 0  # kept connections, idle or in use
        self._closed = False  # after close(), connections coming back are closed, not kept

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        connection, kept = await self._take()
        try:
            yield connection
        except BaseException as error:
            if not isinstance(error, Exception) and not connection.invalidated:  # cancelled mid-statement
                await greenlet_spawn(connection.invalidate)
            raise
        finally:
            await self._give(connection, kept)

    async def _take(self) -> tuple[Connection, bool]:
        while True:
            while self._idle:
                connection, since = self._idle.pop()
                if time.monotonic() - since < self._idle_ping or await self._alive(connection):
                    return connection, True
                self._count -= 1
            if self._count < self._size or self._closed:
                return await self._open(kept=not self._closed)
            handed = await self._wait()
            if handed is False:
                return await self._open(kept=False)
            if handed is not None:
                return handed[0], True

    async def _open(self, *, kept: bool) -> tuple[Connection, bool]:
        if not kept:
            return await greenlet_spawn(self._engine.connect), False
        self._count += 1
        try:
            return await greenlet_spawn(self._engine.connect), True
        except BaseException:
            self._count -= 1
            self._wake()
            raise

    async def _wait(self) -> tuple[Connection, float] | None | bool:
        """Wait in turn: a connection handed over, None to try again, or False when out of patience.
        A timer gives up, not asyncio.wait: that cost about 11 µs more a wait, and at 32 clients reads and
        writes queue here."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[Connection, float] | None | bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self._patience, self._give_up, waiter)
        try:
            return await waiter
        except BaseException:  # cancelled while waiting: pass on whatever was handed over meanwhile
            self._forget(waiter)
            raise
        finally:
            timer.cancel()

    def _give_up(self, waiter: asyncio.Future[tuple[Connection, float] | None | bool]) -> None:
        """Out of patience, unless a connection or a place was handed over first."""
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_result(False)

    def _forget(self, waiter: asyncio.Future[tuple[Connection, float] | None | bool]) -> None:
        if waiter.cancelled() or not waiter.done():
            waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            return
        handed = waiter.result()
        if handed is None:
            self._wake()
        elif handed is not False:
            self._hand(*handed)

    def _hand(self, connection: Connection, since: float) -> None:
        """A kept connection is free: to the longest waiter, else to the idle ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result((connection, since))
                return
        self._idle.append((connection, since))

    def _wake(self) -> None:
        """A kept place came free (a connection was dropped): the longest waiter tries again."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @staticmethod
    async def _alive(connection: Connection) -> bool:
        driver = connection.connection.driver_connection
        try:
            await driver.fetchval("SELECT 1")
            return True
        except Exception as error:
            await greenlet_spawn(connection.invalidate, error)
            await greenlet_spawn(connection.close)
            return False

    async def _give(self, connection: Connection, kept: bool) -> None:
        usable = not connection.invalidated and not connection.closed
        if usable and connection.connection.driver_connection.is_in_transaction():
            await greenlet_spawn(connection.invalidate)  # nothing ended it: never hand it out like that
            usable = False
        if kept and usable and not self._closed:
            self._hand(connection, time.monotonic())
            return
        if kept:
            self._count -= 1
            self._wake()
        await greenlet_spawn(connection.close)

    async def close(self) -> None:
        """Close the idle ones (at shutdown); ones in use are closed as they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._count -= len(idle)
        while self._waiters:
            self._wake()
        for connection, _since in idle:
            await greenlet_spawn(connection.close)


class Session:
    """One write transaction on PostgreSQL (see the module), over a synchronous ORM Session bound to a
    kept connection: the AsyncSession methods the store uses, like store/sqlite.py's InlineSession.
    Marked statements run on asyncpg; anything else goes to SQLAlchemy on a greenlet, as AsyncSession
    would send it, inside the transaction this class begins and ends on asyncpg."""

    __slots__ = ("sync_session", "_connection", "_driver", "_transaction", "_touched")

    def __init__(self, session: SyncSession, connection: Connection) -> None:
        self.sync_session = session  # bound to `connection`, in autocommit: SQLAlchemy sends no BEGIN
        self._connection = connection
        self._driver: asyncpg.Connection = connection.connection.driver_connection
        self._transaction = False  # BEGIN sent, COMMIT or ROLLBACK not yet
        self._touched = False  # SQLAlchemy has used the connection: closing the session may await

    @property
    def bind(self) -> Connection:
        return self._connection

    def add(self, instance: object) -> None:
        self.sync_session.add(instance)

    async def _begin(self, then: str | None = None) -> bool:
        """Send BEGIN if this transaction has not begun, with `then` (SQL without parameters) in the same
        simple query, one round trip for both; whether `then` was sent."""
        if not self._transaction:
            sql = "BEGIN" if then is None else f"BEGIN; {then}"
            try:
                await _call(sql, self._driver, self._driver.execute(sql))
            except exc.DBAPIError as error:
                await self._invalidate(error)  # whatever state it is in, it is not reused
                raise
            self._transaction = True
            return True
        return False

    async def set_local(self, name: str, value: str) -> None:
        """SET LOCAL `name` to `value` for the rest of this transaction (`name` and `value`: identifiers from
        this code, never user input). First in a transaction (the outbox claim, the sweep, a declare's
        search), it goes with the BEGIN."""
        sql = f"SET LOCAL {name} = {value}"
        if not await self._begin(then=sql):
            await _call(sql, self._driver, self._driver.execute(sql))

    async def _invalidate(self, error: BaseException | None = None) -> None:
        await greenlet_spawn(self._connection.invalidate, error)

    async def _run(self, statement: Any, params: Any) -> direct.Result:
        await self._begin()
        return await run(self._driver, self._connection.dialect, statement, params, self._invalidate)

    async def _sqlalchemy(self, call: Callable[..., T], *args: Any, **kw: Any) -> T:
        """`call` (one of the ORM Session's methods) on a greenlet, inside the transaction."""
        await self._begin()
        self._touched = True
        return await greenlet_spawn(call, *args, **kw)

    async def _flush(self) -> None:
        """Write back changed incidents on asyncpg, then let SQLAlchemy flush anything else pending."""
        sync = self.sync_session
        for instance, state, statement, params in writeback.pending(sync):
            result = await self._run(statement, params)
            writeback.written(sync, instance, state, params, result.rowcount)
        if sync.new or sync.dirty or sync.deleted:
            await self._sqlalchemy(sync.flush)

    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        await self._flush()
        if direct.runs_rows(statement, params, kw, self._connection.dialect):
            return await self._run(statement, params)
        return await self._sqlalchemy(self.sync_session.execute, statement, params, **kw)

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        await self._flush()
        sync = self.sync_session
        if direct.loads_objects(statement, params, kw, self._connection.dialect):
            return [direct.adopt(sync, statement, row) for row in await self._run(statement, params)]
        return await self._sqlalchemy(sync.scalars, statement, params, **kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if direct.loads_objects(statement, params, kw, self._connection.dialect):
            found = await self.scalars(statement, params)
            return found[0] if found else None
        await self._flush()
        return await self._sqlalchemy(self.sync_session.scalar, statement, params, **kw)

    async def get(self, entity: Any, ident: Any, **kw: Any) -> Any:
        await self._flush()
        return await self._sqlalchemy(self.sync_session.get, entity, ident, **kw)

    async def flush(self, objects: Any = None) -> None:
        if objects is not None:
            await self._sqlalchemy(self.sync_session.flush, objects)
        await self._flush()

    async def commit(self) -> None:
        await self._flush()
        if self._transaction:
            await self._end("COMMIT")

    async def rollback(self) -> None:
        """End the transaction after an error; a ROLLBACK that fails leaves the connection invalidated and
        raises nothing, so the caller's error is the one reported."""
        if not self._transaction:
            return
        with contextlib.suppress(exc.DBAPIError):
            await self._end("ROLLBACK")

    async def close(self) -> None:
        """Close the ORM session (its objects stay usable, detached); on a greenlet if SQLAlchemy used the
        connection, whose transaction record it then ends (no round trip: the connection is in
        autocommit)."""
        if self._touched:
            await greenlet_spawn(self.sync_session.close)
        else:
            self.sync_session.close()

    async def _end(self, sql: str) -> None:
        """Send COMMIT or ROLLBACK. If it fails and the connection may still be inside the transaction (or
        is gone, or the wait was cancelled), invalidate it: it never goes back to the pool that way."""
        driver = self._driver
        self._transaction = False
        try:
            # asyncpg refuses at once, before any await, if the connection is closed
            await driver.execute(sql)
        except Exception as error:
            translated = _translated(sql, driver, error)
            if translated.connection_invalidated or driver.is_in_transaction():
                await self._invalidate(translated)
            raise translated from error
        except BaseException:
            await self._invalidate()
            raise


class Rows:
    """`Database.rows()` on PostgreSQL: AsyncConnection's `execute` over a synchronous Connection in
    autocommit, marked statements on its asyncpg connection."""

    __slots__ = ("sync_connection",)

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection

    async def execute(self, statement: Any, params: Any = None) -> Any:
        connection = self.sync_connection
        if params is None or not direct.marked(statement):
            return await greenlet_spawn(connection.execute, statement, params)
        driver = connection.connection.driver_connection
        return await run(driver, connection.dialect, statement, params, self._invalidate)

    async def _invalidate(self, error: BaseException) -> None:
        await greenlet_spawn(self.sync_connection.invalidate, error)
