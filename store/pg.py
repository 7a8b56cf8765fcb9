"""PostgreSQL: write transactions and the statements every request makes, on asyncpg directly.

Through SQLAlchemy's asyncio layer a primary-key SELECT cost about 360 µs of CPU here (greenlet switches,
execution context, cursor adaptation, result wrapping), a transaction's BEGIN and COMMIT about 500 µs
more, and loading one incident through the ORM about 600 µs; on the same asyncpg connection alone, a
statement costs about 100 µs. So:

- A write transaction (`Session`) is asyncpg's own. The session's connection is checked out in autocommit,
  so SQLAlchemy sends no BEGIN or COMMIT of its own; `Session` sends BEGIN before the first statement and
  COMMIT (or ROLLBACK) at the end, and every statement, SQLAlchemy's or asyncpg's, runs inside it. If the
  end cannot be sent, the connection is invalidated, so none goes back to the pool inside a transaction.
- Statements marked with `direct.DIRECT` (store/direct.py: built once, compiled once by SQLAlchemy's
  compiler for this dialect, values through the same type processors) run on asyncpg: the view reads, the
  timeline, timer and outbox INSERTs, the read of an incident's timers, and the locked load of an
  incident (`service.find`), whose row becomes an Incident in the session as if the ORM had loaded it.
- A changed incident is written back (store/writeback.py's UPDATE, with its version check) on asyncpg
  before the next statement and before COMMIT, as SQLAlchemy's autoflush would; any other pending ORM
  change is flushed by SQLAlchemy.
- Display reads (`Rows`) run on a connection checked out of the same pool, in autocommit.

A failure comes back as SQLAlchemy's exception (IntegrityError, else OperationalError), so handlers
answer it as before; when the connection is gone, it is invalidated, so the pool does not hand it out
again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
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


class Session:
    """One write transaction on PostgreSQL (see the module): an AsyncSession, every attribute of which is
    its, whose statements run inside a transaction this class begins and ends on asyncpg."""

    __slots__ = ("async_session", "_connection", "_driver", "_transaction")

    def __init__(self, session: AsyncSession) -> None:
        self.async_session = session  # bound to the autocommit engine: SQLAlchemy sends no BEGIN
        self._connection: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._transaction: Any = None  # asyncpg's Transaction, once BEGIN is sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.async_session, name)

    async def _begin(self) -> asyncpg.Connection:
        if self._driver is None:
            self._connection = connection = await self.async_session.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            transaction = driver.transaction()
            try:
                await _call("BEGIN", driver, transaction.start())
            except exc.DBAPIError as error:
                await connection.invalidate(error)  # whatever state it is in, it is not reused
                raise
            self._driver, self._transaction = driver, transaction
        return self._driver

    async def _run(self, statement: Any, params: Any) -> direct.Result:
        driver = await self._begin()
        connection = self._connection
        assert connection is not None
        return await run(driver, connection.dialect, statement, params, connection.invalidate)

    async def _flush(self) -> None:
        """Write back changed incidents on asyncpg, then let SQLAlchemy flush anything else pending."""
        session = self.async_session
        sync = session.sync_session
        for instance, state, statement, params in writeback.pending(sync):
            result = await self._run(statement, params)
            writeback.written(sync, instance, state, params, result.rowcount)
        if session.new or session.dirty or session.deleted:
            await self._begin()
            await session.flush()

    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        await self._flush()
        if direct.runs_rows(statement, params, kw, self.async_session.bind.dialect):
            return await self._run(statement, params)
        await self._begin()
        return await self.async_session.execute(statement, params, **kw)

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        await self._flush()
        if direct.loads_objects(statement, params, kw, self.async_session.bind.dialect):
            sync = self.async_session.sync_session
            return [direct.adopt(sync, statement, row) for row in await self._run(statement, params)]
        await self._begin()
        return await self.async_session.scalars(statement, params, **kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        if direct.loads_objects(statement, params, kw, self.async_session.bind.dialect):
            found = await self.scalars(statement, params)
            return found[0] if found else None
        await self._flush()
        await self._begin()
        return await self.async_session.scalar(statement, params, **kw)

    async def get(self, entity: Any, ident: Any, **kw: Any) -> Any:
        await self._flush()
        await self._begin()
        return await self.async_session.get(entity, ident, **kw)

    async def flush(self, objects: Any = None) -> None:
        if objects is not None:
            await self._begin()
            await self.async_session.flush(objects)
        await self._flush()

    async def commit(self) -> None:
        await self._flush()
        if self._transaction is not None:
            await self._end(self._transaction.commit, "COMMIT")

    async def rollback(self) -> None:
        """End the transaction after an error; a ROLLBACK that fails leaves the connection invalidated and
        raises nothing, so the caller's error is the one reported."""
        if self._transaction is None:
            return
        with contextlib.suppress(exc.DBAPIError):
            await self._end(self._transaction.rollback, "ROLLBACK")

    async def _end(self, ending: Callable[[], Awaitable[None]], sql: str) -> None:
        """Send COMMIT or ROLLBACK. If it fails and the connection may still be inside the transaction (or
        is gone, or the wait was cancelled), invalidate it: it never goes back to the pool that way."""
        driver, connection = self._driver, self._connection
        self._transaction = None
        assert driver is not None and connection is not None
        try:
            await ending()  # asyncpg refuses at once, before any await, if the connection is closed
        except Exception as error:
            translated = _translated(sql, driver, error)
            if translated.connection_invalidated or driver.is_in_transaction():
                await connection.invalidate(translated)
            raise translated from error
        except BaseException:
            await connection.invalidate()
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
