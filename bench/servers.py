"""Helper processes for the benchmarks, each printing one JSON line with its URLs, then serving until killed:
- `fake [--rate-limits]`: the test suite's fake Slack, enforcing Slack's published quotas when asked,
  plus /stats (messages by metadata event type, answers by method, chat.update calls that changed
  nothing, problems), /dump (every call, message and channel, for bench/storm.py) and /response_url (a
  response_url the fake accepts posts to);
- `bare SECRET`: the ceiling, a bare slack-bolt AsyncApp on aiohttp whose only handler acks /incident. It
  also acks the Acknowledge button, which bench/load.py measures once per N for comparison only;
- `reference SECRET DATABASE_URL`: one bare read or write through SQLAlchemy. The same bare app,
  whose /incident handler first reads one row by primary key (`INC-n show`) or INSERTs one row in a
  transaction of its own (`INC-n note ...`; the issue's reference for one write), in a table of its own
  of 10,000 rows. PostgreSQL as Tocsin runs it: SQLAlchemy's asyncio layer on asyncpg, reads in
  autocommit; SQLite through synchronous SQLAlchemy inline on the loop, one writer connection, WAL
  (a lighter path than Tocsin's aiosqlite). For comparison only."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request  # noqa: E402
from slack_bolt.async_app import AsyncApp  # noqa: E402
from slack_bolt.authorization import AuthorizeResult  # noqa: E402
from sqlalchemy import (  # noqa: E402
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    insert,
    make_url,
    select,
)
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from tests.fakeslack import FakeSlack  # noqa: E402

BENCH_CHANNEL = "C0BENCH"
PAGING_CHANNEL = "C0PAGING"  # a fixed paging channel (bench/storm.yaml pages it)
REFERENCE_ROWS = 10_000


async def serve(app: web.Application) -> int:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return int(runner.addresses[0][1])


async def fake(*, rate_limits: bool) -> None:
    slack = FakeSlack(rate_limits=rate_limits)
    await slack.start()
    for channel, name in (
        ("C0123ANNOUNCE", "incidents"),
        ("C0123LEADERS", "leadership"),
        (BENCH_CHANNEL, "bench"),
        ("C_GENERAL", "general"),
        (PAGING_CHANNEL, "paging"),
    ):
        slack.add_channel(channel, name)

    async def stats(request: web.Request) -> web.Response:
        events = Counter(m.event_type for m in slack.messages)
        return web.json_response(
            {
                "events": events,
                "calls": len(slack.calls),
                "answers": {method: asdict(a) for method, a in slack.answers().items()},
                "noop_updates": len(slack.noop_updates),
                "metadata_only_updates": len(slack.metadata_only_updates),
                "problems": slack.problems[:5],
            }
        )

    async def dump(request: web.Request) -> web.Response:
        return web.json_response(_dump(slack))

    async def response_url(request: web.Request) -> web.Response:
        return web.json_response({"url": slack.new_response_url()})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/stats", stats)
    app.router.add_get("/dump", dump)
    app.router.add_get("/response_url", response_url)
    port = await serve(app)
    print(json.dumps({"api_url": slack.api_url, "stats_url": f"http://127.0.0.1:{port}/stats"}), flush=True)
    await asyncio.Event().wait()


def _dump(slack: FakeSlack) -> dict[str, Any]:
    """Everything Slack saw, times as wall-clock seconds: each call (its channel, name, thread and how it
    was answered; not its blocks), each message as it ends with when it was posted and edited, each
    channel, and the chat.update calls that changed nothing."""
    wall = time.time() - time.monotonic()  # the fake records calls on the monotonic clock
    keys = ("channel", "name", "ts", "thread_ts", "users", "usergroup", "user", "timestamp")
    calls = [
        {
            "method": c.method,
            "status": c.status,
            "ok": c.ok,
            "error": c.error,
            "at": c.at + wall,
            "args": {k: c.args[k] for k in keys if isinstance(c.args.get(k), str)},
            "metadata": c.args.get("metadata") if isinstance(c.args.get("metadata"), dict) else None,
        }
        for c in slack.calls
    ]
    messages = [
        {
            "channel": m.channel,
            "ts": m.ts,
            "thread_ts": m.thread_ts,
            "text": m.text,
            "blocks": m.blocks,
            "metadata": m.metadata,
            "posted_at": m.posted_at,
            "edited_at": m.edited_at,
        }
        for m in slack.messages
    ]
    channels = [
        {
            "id": c.id,
            "name": c.name,
            "topic": c.topic,
            "pins": c.pins,
            "user": c.user,
            "members": sorted(c.members),
        }
        for c in slack.channels.values()
    ]
    return {
        "calls": calls,
        "messages": messages,
        "channels": channels,
        "noop_updates": [asdict(e) for e in slack.noop_updates],
        "metadata_only_updates": [asdict(e) for e in slack.metadata_only_updates],
        "problems": slack.problems,
    }


def _bolt(secret: str) -> AsyncApp:
    async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token="xoxb-bench")

    return AsyncApp(signing_secret=secret, authorize=authorize, process_before_response=True)


async def _listen(bolt: AsyncApp) -> None:
    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    port = await serve(app)
    print(json.dumps({"url": f"http://127.0.0.1:{port}/slack/events"}), flush=True)
    await asyncio.Event().wait()


async def bare(secret: str) -> None:
    bolt = _bolt(secret)

    @bolt.command("/incident")
    async def on_command_incident(ack) -> None:  # type: ignore[no-untyped-def]
        await ack()

    @bolt.action("incident_acknowledge")  # the click's own floor: Bolt parsing a button's payload
    async def on_action_acknowledge(ack) -> None:  # type: ignore[no-untyped-def]
        await ack()

    await _listen(bolt)


async def reference(secret: str, url: str) -> None:
    table = Table(
        "bench_reference",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("body", String(200)),
        Column("at", DateTime(timezone=True)),
    )
    write, read = insert(table), select(table).where(table.c.id == bindparam("id"))
    rows = [{"body": f"row {n}", "at": datetime.now(UTC)} for n in range(REFERENCE_ROWS)]
    bolt = _bolt(secret)

    def params(text: str) -> tuple[bool, dict[str, Any]]:
        """`INC-n note ...` writes a row; `INC-n show` reads row n."""
        ref, _, rest = text.partition(" ")
        if rest.startswith("note"):
            return True, {"body": rest[:200], "at": datetime.now(UTC)}
        return False, {"id": int(ref.removeprefix("INC-")) % REFERENCE_ROWS + 1}

    if url.startswith("sqlite"):  # synchronous SQLAlchemy inline on the loop, the lightest SQLite path
        engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"), pool_size=1, max_overflow=0)

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA journal_mode=WAL")  # Tocsin's journal and durability
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        table.drop(engine, checkfirst=True)
        table.create(engine)
        with engine.begin() as connection:
            connection.execute(write, rows)

        @bolt.command("/incident")
        async def on_sqlite_command(ack, command) -> None:  # type: ignore[no-untyped-def]
            writes, values = params(command["text"])
            if writes:
                with Session(engine) as session, session.begin():
                    session.execute(write, values)
            else:
                with engine.connect() as connection:
                    connection.execute(read, values).one()
            await ack()

    else:  # as Tocsin runs PostgreSQL: SQLAlchemy's asyncio layer on asyncpg, reads in autocommit
        async_engine = create_async_engine(url)
        async with async_engine.begin() as connection:
            await connection.run_sync(table.drop, checkfirst=True)
            await connection.run_sync(table.create)
            await connection.execute(write, rows)
        sessions = async_sessionmaker(async_engine)
        reader = async_engine.execution_options(isolation_level="AUTOCOMMIT")

        @bolt.command("/incident")
        async def on_command_incident(ack, command) -> None:  # type: ignore[no-untyped-def]
            writes, values = params(command["text"])
            if writes:
                async with sessions.begin() as session:
                    await session.execute(write, values)
            else:
                async with reader.connect() as connection:
                    (await connection.execute(read, values)).one()
            await ack()

    await _listen(bolt)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "fake":
        asyncio.run(fake(rate_limits="--rate-limits" in sys.argv[2:]))
    else:
        asyncio.run(bare(sys.argv[2]) if command == "bare" else reference(*sys.argv[2:4]))
