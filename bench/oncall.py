"""On-call benchmark: what schedules add to every sweep, and what resolving who is on call costs.

    .venv/bin/python bench/oncall.py [--schedules 1 24] [--overrides 200] [--stores sqlite postgres]

PostgreSQL is read from BENCH_DATABASE_URL or TEST_DATABASE_URL (its public schema is dropped and
recreated!). Prints a table and writes bench/results/oncall.json. Measures, for each store and number
of schedules (each a weekly layer, a business-hours layer and `--overrides` overrides in the database):
  - the sweep's hand-off step when nothing is due (median of 21): every replica pays it every tick;
  - the same step when every schedule hands off at once (notice, DM and user group queued for each);
  - `rota.on_call` and `rota.handoffs(count=3)` on a schedule of one-second shifts, in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import store_urls, write_results  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bot.config import load_policy  # noqa: E402
from bot.scheduler import Sweeper  # noqa: E402
from handlers.messages import Composer  # noqa: E402
from handlers.render import Renderer  # noqa: E402
from store import rota  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import ScheduleOverride, table_of  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)
PEOPLE = tuple(f"U0{n:04d}" for n in range(8))


def schedule(name: str) -> rota.Schedule:
    weekly = rota.Layer("weekly", PEOPLE, timedelta(weeks=1), datetime(2026, 12, 7, 9))
    office = rota.Layer(
        "office",
        PEOPLE[:2],
        timedelta(days=1),
        datetime(2026, 12, 7, 9),
        rota.Window(frozenset(range(5)), clock(9), clock(17)),
    )
    return rota.Schedule(
        name, ZoneInfo("Europe/London"), (weekly, office), channel="C0ONCALL", usergroup="S0GROUP"
    )


async def seed(db: Database, names: list[str], overrides: int) -> None:
    rows = [
        dict(
            schedule=names[n % len(names)],
            user=PEOPLE[n % len(PEOPLE)],
            starts_at=NOW + timedelta(hours=3 * n),
            ends_at=NOW + timedelta(hours=3 * n + 2),
            created_at=NOW,
            created_by=PEOPLE[0],
        )
        for n in range(overrides)
    ]
    async with db.write() as session:
        if rows:
            await session.execute(insert(table_of(ScheduleOverride)), rows)


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


async def sweep_costs(url: str, count: int, overrides: int) -> dict:
    base = load_policy(ROOT / "app.yaml")
    names = [f"team-{n}" for n in range(count)]
    policy = replace(base, schedules={name: schedule(name) for name in names})
    db = Database(url)
    await db.upgrade()
    await seed(db, names, overrides)
    moment = [NOW]
    sweeper = Sweeper(
        db=db,
        composer=Composer(policy=policy, renderer=Renderer(timezone=policy.timezone)),
        policy=policy,
        clock=lambda: moment[0],
        wake_relay=lambda: None,
    )
    await sweeper._handoffs()  # first sight and the first plans: once per schedule, ever
    idle = []
    for _ in range(21):
        began = time.perf_counter()
        await sweeper._handoffs()
        idle.append(time.perf_counter() - began)
    moment[0] = datetime(2026, 12, 14, 9, 0, 1, tzinfo=UTC)  # Monday 09:00: every schedule hands off
    began = time.perf_counter()
    handed = await sweeper._handoffs()
    all_at_once = time.perf_counter() - began
    await db.dispose()
    return {"idle_ms": median_ms(idle), "handoff_ms": round(all_at_once * 1000, 2), "handed_off": handed}


def rota_costs() -> dict:
    fast = rota.Schedule(
        "fast", ZoneInfo("UTC"), (rota.Layer("fast", PEOPLE, timedelta(seconds=1), datetime(2026, 1, 1)),)
    )
    on_call, handoffs = [], []
    for n in range(200):
        at = NOW + timedelta(seconds=n * 7.3)
        began = time.perf_counter()
        rota.on_call(fast, [], at)
        on_call.append(time.perf_counter() - began)
        began = time.perf_counter()
        rota.handoffs(fast, [], after=at, count=3)
        handoffs.append(time.perf_counter() - began)
    return {"on_call_ms": median_ms(on_call), "handoffs_ms": median_ms(handoffs)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, nargs="+", default=[1, 24])
    parser.add_argument("--overrides", type=int, default=200)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    in_memory = rota_costs()
    sweeps: list[dict] = []
    print(
        f"rota, one-second shifts: on_call {in_memory['on_call_ms']} ms, handoffs(3) {in_memory['handoffs_ms']} ms"
    )
    print(f"{'store':<9} {'schedules':>9} {'idle sweep ms':>14} {'all hand off ms':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.schedules:
            for store, url in store_urls(args.stores, tmp, f"oncall-{count}"):
                if store == "postgres":
                    await reset_postgres(url)
                figures = await sweep_costs(url, count, args.overrides)
                sweeps.append({"store": store, "schedules": count, **figures})
                print(f"{store:<9} {count:>9} {figures['idle_ms']:>14} {figures['handoff_ms']:>16}")
    write_results("oncall", sweeps, rota=in_memory, overrides=args.overrides)


if __name__ == "__main__":
    asyncio.run(main())
