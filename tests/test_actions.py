"""Buttons are acked before their work runs: a click never waits on the database for its ack."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from bot.app import AFTER_ACK, AFTER_ACK_WAIT
from tests.conftest import RunningBot, postgres_connection
from tests.helpers import declare, drained


@asynccontextmanager
async def database_held(bot: RunningBot, number: int) -> AsyncIterator[None]:
    """Another process's transaction in the way of any change to incident `number`: SQLite's write lock,
    or PostgreSQL's lock on the incident's row."""
    url = bot.tocsin.settings.database_url
    if bot.tocsin.db.is_sqlite:
        other = sqlite3.connect(make_url(url).database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    other = await postgres_connection(url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT 1 FROM incidents WHERE number = $1 FOR UPDATE", number)
        yield
        await transaction.rollback()
    finally:
        await other.close()


async def test_a_click_is_acked_while_the_database_is_held_and_lands_once_it_is_free(bot) -> None:
    fake = bot.fake
    incident = await declare(bot, "P2 Payments are failing")
    await drained(bot)
    async with database_held(bot, 1):
        began = time.monotonic()
        reply = await bot.slack.click("incident_acknowledge", "1", user="U_BOB", message_ts=incident.card.ts)
        acked_in = time.monotonic() - began
        assert reply.status == 200 and acked_in < 1.0, (reply, acked_in)
        await asyncio.sleep(0.3)  # the work is waiting on the lock, not lost and not done
        assert fake.posts(event_type="incident_acknowledged") == []
    posted = await fake.wait_for(lambda: fake.posts(event_type="incident_acknowledged"))
    assert len(posted) == 1 and "<@U_BOB>" in posted[0].text
    shown = await bot.slack.command("INC-1 show")
    assert "investigating" in shown.body and "U_BOB" in shown.body


async def test_a_storm_of_clicks_on_a_held_database_is_acked_within_slacks_deadline_and_none_is_lost(
    bot,
) -> None:
    fake = bot.fake
    incident = await declare(bot, "P2 Everyone clicks while the database is busy")
    await drained(bot)
    users = [f"U_CLICKER{n}" for n in range(AFTER_ACK + 4)]
    async with database_held(bot, 1):
        began = time.monotonic()
        replies = await asyncio.gather(
            *(
                bot.slack.click("incident_acknowledge", "1", user=u, message_ts=incident.card.ts)
                for u in users
            )
        )
        slowest = time.monotonic() - began
        # The first AFTER_ACK clicks' work waits on the lock; the rest are acked once AFTER_ACK_WAIT has
        # passed, well inside Slack's 3 seconds, rather than waiting for the database.
        assert all(r.status == 200 for r in replies) and slowest < AFTER_ACK_WAIT + 1.0, slowest
        assert fake.posts(event_type="incident_acknowledged") == []
    await fake.wait_for(lambda: len(fake.responses) == len(users) - 1)
    await drained(bot)
    acked = fake.posts(event_type="incident_acknowledged")
    assert len(acked) == 1
    winner = next(u for u in users if f"<@{u}>" in acked[0].text)
    assert all(f"already acknowledged by <@{winner}>" in r["body"]["text"] for r in fake.responses)
