"""Buttons are acked before their work runs: a click never waits on the database for its ack."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from bot.app import AFTER_ACK, AFTER_ACK_WAIT
from tests.conftest import SECRET, postgres_connection
from tests.helpers import declare, drained
from tests.processes import environment, free_port, start, terminate, wait_healthy
from tests.signed import SlackRequests


@asynccontextmanager
async def database_held(url: str, number: int) -> AsyncIterator[None]:
    """Another process's transaction in the way of any change to incident `number`: SQLite's write lock,
    or PostgreSQL's lock on the incident's row."""
    if url.startswith("sqlite"):
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
    async with database_held(bot.tocsin.settings.database_url, 1):
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
    async with database_held(bot.tocsin.settings.database_url, 1):
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


async def test_a_click_acked_as_the_bot_is_stopped_is_still_applied_and_reaches_slack(
    tmp_path, fake, database_url
) -> None:
    env = environment(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        DATABASE_URL=database_url,
    )

    async def serve(name: str) -> tuple[asyncio.subprocess.Process, SlackRequests]:
        port, log = free_port(), tmp_path / f"{name}.log"
        process = await start("serve", "--host", "127.0.0.1", "--port", str(port), env=env, log=log)
        await wait_healthy(f"http://127.0.0.1:{port}", process, log)
        return process, SlackRequests(f"http://127.0.0.1:{port}/slack/events", SECRET, fake)

    first, slack = await serve("first")
    try:
        assert "INC-1" in (await slack.command("declare P2 Payments are failing")).body
        card = await fake.wait_for(
            lambda: next(
                (m for m in fake.posts(event_type="incident_declared") if m.channel != "C0123ANNOUNCE"), None
            )
        )
        async with database_held(database_url, 1):
            reply = await slack.click("incident_acknowledge", "1", user="U_BOB", message_ts=card.ts)
            assert reply.status == 200
            first.send_signal(signal.SIGTERM)  # the click's work is still waiting on the database
            await asyncio.sleep(0.5)
        assert await terminate(first) == 0
    finally:
        await slack.close()
        await terminate(first)
    second, slack = await serve("second")  # whatever the first did not deliver, this one does
    try:
        posted = await fake.wait_for(lambda: fake.posts(event_type="incident_acknowledged"))
        shown = await slack.command("INC-1 show")
    finally:
        await slack.close()
        await terminate(second)
    assert len(posted) == 1 and "<@U_BOB>" in posted[0].text
    assert "investigating" in shown.body
