"""store/pg.py's Kept: PostgreSQL connections kept checked out for write transactions and display reads.

When every kept connection is in use, users wait in turn and one coming back goes to the longest waiter;
one out of patience gets a pool connection; a waiter cancelled meanwhile loses nobody a connection."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from store.pg import Kept


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip(
            "PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    engine = create_async_engine(url, pool_size=4, max_overflow=0).execution_options(
        isolation_level="AUTOCOMMIT"
    )
    yield engine
    await engine.dispose()


def _server_pid(connection: Connection) -> int:
    return connection.connection.driver_connection.get_server_pid()


async def _pid(kept: Kept) -> int:
    async with kept.connection() as connection:
        return _server_pid(connection)


async def _user(kept: Kept, name: str, order: list[tuple[str, int]], hold: float = 0.01) -> None:
    async with kept.connection() as connection:
        order.append((name, _server_pid(connection)))
        await asyncio.sleep(hold)


async def test_users_get_the_kept_connection_in_turn_and_no_newcomer_jumps_the_queue(
    engine: AsyncEngine,
) -> None:
    kept = Kept(engine.sync_engine, size=1, idle_ping=60, patience=5)
    order: list[tuple[str, int]] = []
    async with kept.connection() as held:
        pid = _server_pid(held)
        waiting = []
        for name in "ABC":
            waiting.append(asyncio.create_task(_user(kept, name, order)))
            await asyncio.sleep(0.01)  # each is queued before the next arrives
        assert order == []  # all three wait for the one kept connection
    newcomer = asyncio.create_task(_user(kept, "D", order))  # arrives as the connection comes back
    await asyncio.gather(*waiting, newcomer)
    assert order == [("A", pid), ("B", pid), ("C", pid), ("D", pid)]
    await kept.close()


async def test_a_user_out_of_patience_gets_a_pool_connection_and_checks_it_back_in(
    engine: AsyncEngine,
) -> None:
    kept = Kept(engine.sync_engine, size=1, idle_ping=60, patience=0.05)
    order: list[tuple[str, int]] = []
    async with kept.connection() as held:
        pid = _server_pid(held)
        await asyncio.wait_for(_user(kept, "impatient", order), timeout=2)
        assert engine.sync_engine.pool.checkedout() == 1  # only the kept one: the other went back
    assert order[0][0] == "impatient" and order[0][1] != pid
    assert await _pid(kept) == pid  # the kept one is still kept
    await kept.close()


async def test_a_waiter_cancelled_while_waiting_loses_nobody_the_connection(engine: AsyncEngine) -> None:
    kept = Kept(engine.sync_engine, size=1, idle_ping=60, patience=5)
    order: list[tuple[str, int]] = []
    async with kept.connection() as held:
        pid = _server_pid(held)
        cancelled = asyncio.create_task(_user(kept, "cancelled", order))
        await asyncio.sleep(0.01)
        behind = asyncio.create_task(_user(kept, "behind", order))
        await asyncio.sleep(0.01)
        cancelled.cancel()
    await asyncio.wait_for(behind, timeout=2)
    assert cancelled.cancelled()
    assert order == [("behind", pid)]
    await kept.close()


async def test_a_waiter_cancelled_just_after_the_connection_was_handed_to_it_passes_it_on(
    engine: AsyncEngine,
) -> None:
    kept = Kept(engine.sync_engine, size=1, idle_ping=60, patience=5)
    order: list[tuple[str, int]] = []
    held = kept.connection()
    pid = _server_pid(await held.__aenter__())
    cancelled = asyncio.create_task(_user(kept, "cancelled", order))
    await asyncio.sleep(0.01)
    behind = asyncio.create_task(_user(kept, "behind", order))
    await asyncio.sleep(0.01)
    await held.__aexit__(None, None, None)  # handed to "cancelled", which has not run since
    cancelled.cancel()
    await asyncio.wait_for(behind, timeout=2)
    assert cancelled.cancelled()
    assert order == [("behind", pid)]
    await kept.close()
