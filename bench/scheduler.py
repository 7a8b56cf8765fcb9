"""Scheduler benchmark: ticks over 10,000 and 100,000 open incidents with pending timers.

    .venv/bin/python bench/scheduler.py [--sizes 10000 100000] [--stores sqlite postgres]

PostgreSQL is read from BENCH_DATABASE_URL or TEST_DATABASE_URL (its public schema is dropped and
recreated!). Prints a table and writes bench/results/scheduler.json. Measures:
  - a tick that finds nothing due (median of 7);
  - a tick that fires 1,000 timers (1,000 update nudges fall due together);
  - the relay delivering those 1,000 messages to the fake Slack (messages per second);
  - the query plan of the due-timer query, which must use ix_timers_due.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import postgres_url, write_results  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from bot.config import load_policy  # noqa: E402
from bot.relay import Relay  # noqa: E402
from bot.scheduler import Sweeper  # noqa: E402
from bot.slack import SlackFacade  # noqa: E402
from handlers.messages import Composer  # noqa: E402
from handlers.render import Renderer  # noqa: E402
from store import timers  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import Incident, State, Timer  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402
from tests.fakeslack import FakeSlack  # noqa: E402

HOT = 1000  # incidents whose update nudge falls due in the "busy" tick


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def incidents(n: int, now: datetime) -> list[dict]:
    rows = []
    for number in range(1, n + 1):
        hot = number <= HOT
        start = now - timedelta(minutes=29) if hot else now  # P1 nudges every 30m; P4 every day
        rows.append(
            dict(
                number=number,
                version=1,
                title=f"Incident {number}",
                description="",
                category="other",
                priority="P1" if hot else "P4",
                state=State.INVESTIGATING,
                reporter="U1",
                commander="U2",
                channel_id=f"C{number:08d}",
                declared_at=start,
                acknowledged_at=start,
                acknowledged_by="U2",
                active_since=start,
                escalation_level=1,
                reopen_count=0,
                resolution_paused_seconds=0,
            )
        )
    return rows


async def load(db: Database, n: int, now: datetime, policy) -> None:  # type: ignore[no-untyped-def]
    rows = incidents(n, now)
    for chunk in range(0, n, 5000):
        part = rows[chunk : chunk + 5000]
        timer_rows = []
        for row in part:
            for planned in timers.plan(Incident(**row), policy=policy):
                timer_rows.append(
                    dict(
                        incident_number=row["number"],
                        kind=planned.kind,
                        key=planned.key,
                        due_at=planned.due_at,
                        created_at=now,
                    )
                )
        async with db.write() as session:
            await session.execute(insert(Incident), part)
            await session.execute(insert(Timer), timer_rows)
    async with db.write() as session:
        await session.execute(text("ANALYZE"))


DUE_QUERY = (  # what store.timers.due() sends
    "SELECT id, incident_number FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL"
    " AND due_at <= :now ORDER BY due_at, id LIMIT 200"
)


async def plan_of_due_query(db: Database, now: datetime) -> str:
    async with db.read() as session:
        if db.is_sqlite:
            rows = await session.execute(
                text("EXPLAIN QUERY PLAN " + DUE_QUERY), {"now": now.replace(tzinfo=None).isoformat(" ")}
            )
            return "\n".join(str(r[-1]) for r in rows)
        rows = await session.execute(text("EXPLAIN " + DUE_QUERY), {"now": now})
        return "\n".join(r[0] for r in rows)


async def bench(store: str, url: str, n: int, policy) -> dict:  # type: ignore[no-untyped-def]
    if store == "postgres":
        await reset_postgres(url)
    db = Database(url)
    await db.upgrade()
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    await load(db, n, now, policy)
    loaded = time.perf_counter() - started
    async with db.read() as session:
        pending = len(await timers.pending(session, limit=10**7))

    fake = FakeSlack()
    await fake.start()
    for number in range(1, HOT + 1):
        fake.add_channel(f"C{number:08d}", f"inc-{number}")
    composer = Composer(policy=policy, renderer=Renderer(timezone=policy.timezone))
    clock = Clock(now)
    sweeper = Sweeper(db=db, composer=composer, policy=policy, clock=clock, wake_relay=lambda: None)

    idle = []
    for _ in range(7):
        t = time.perf_counter()
        assert await sweeper.sweep() == 0
        idle.append(time.perf_counter() - t)

    clock.now = now + timedelta(minutes=2)
    t = time.perf_counter()
    fired = await sweeper.sweep()
    busy = time.perf_counter() - t
    assert fired == HOT, fired

    slack = SlackFacade(token="xoxb-bench", base_url=fake.api_url)
    relay = Relay(db=db, slack=slack, composer=composer, clock=clock, worker="bench", batch=100)
    t = time.perf_counter()
    delivered = 0
    while (count := await relay.deliver_once()) > 0:
        delivered += count
    relay_seconds = time.perf_counter() - t
    posted = len(fake.posts(event_type="update_nudge"))
    assert posted == HOT, posted

    await slack.aclose()
    plan = await plan_of_due_query(db, now)
    await fake.stop()
    await db.dispose()
    return {
        "store": store,
        "incidents": n,
        "pending_timers": pending,
        "load_seconds": round(loaded, 1),
        "idle_tick_ms": round(statistics.median(idle) * 1000, 2),
        "busy_tick_ms": round(busy * 1000, 1),
        "fired": fired,
        "relay_messages": delivered,
        "relay_per_second": round(delivered / relay_seconds, 1),
        "due_query_uses_index": "ix_timers_due" in plan,
        "due_query_plan": plan,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    policy = load_policy(ROOT / "app.yaml")
    pg = postgres_url()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for store in args.stores:
            if store == "postgres" and not pg:
                print("postgres: skipped (set BENCH_DATABASE_URL or TEST_DATABASE_URL)")
                continue
            for n in args.sizes:
                url = f"sqlite+aiosqlite:///{tmp}/bench-{n}.db" if store == "sqlite" else pg
                result = await bench(store, url, n, policy)
                results.append(result)
                print(
                    f"{store:<9} {n:>7} incidents {result['pending_timers']:>7} timers | idle tick {result['idle_tick_ms']:>7} ms"
                    f" | tick firing {HOT} {result['busy_tick_ms']:>8} ms | relay {result['relay_per_second']:>7} msg/s"
                    f" | due query uses ix_timers_due: {result['due_query_uses_index']}",
                    flush=True,
                )
    write_results("scheduler", results)
    for result in results:
        print(f"\n{result['store']} {result['incidents']}: due-timer query plan\n{result['due_query_plan']}")


if __name__ == "__main__":
    asyncio.run(main())
