"""Report benchmark: `tocsin report` over 100,000 incidents, on SQLite and PostgreSQL.

    .venv/bin/python bench/report.py [--incidents 100000] [--stores sqlite postgres]

Loads the incidents (declared over 120 days; most resolved or closed, some cancelled, reopened,
breached, escalated, still open), then runs the real `tocsin report --days N --format json` as a
child process and reads its wall time and peak RSS. PostgreSQL comes from BENCH_DATABASE_URL or
TEST_DATABASE_URL (its public schema is dropped and recreated!). Writes bench/results/report.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import store_urls, write_results  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from store.db import Database  # noqa: E402
from store.models import Incident, State  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402

CATEGORIES = ["application", "database", "network", "hardware", "security", "other"]


def rows(n: int, now: datetime, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for number in range(1, n + 1):
        declared = now - timedelta(seconds=rng.uniform(0, 120 * 86400))
        row = dict(
            number=number,
            version=1,
            title=f"Incident {number}",
            description="",
            category=rng.choice(CATEGORIES),
            priority=rng.choice(["P1", "P2", "P3", "P3", "P4", "P4"]),
            reporter="U1",
            declared_at=declared,
            escalation_level=rng.choice([1, 1, 1, 2, 3]),
            reopen_count=1 if rng.random() < 0.05 else 0,
            resolution_paused_seconds=0,
            state=State.CLOSED,
        )
        fate = rng.random()
        if fate < 0.05:
            row.update(state=State.CANCELLED, cancelled_at=declared + timedelta(minutes=10))
        elif fate < 0.07:
            row.update(
                state=State.INVESTIGATING,
                acknowledged_at=declared + timedelta(minutes=rng.uniform(1, 60)),
                commander="U2",
            )
        else:
            ack = declared + timedelta(minutes=rng.uniform(1, 120))
            resolved = ack + timedelta(hours=rng.uniform(0.2, 30))
            row.update(
                acknowledged_at=ack,
                commander="U2",
                resolved_at=resolved,
                closed_at=resolved + timedelta(days=1),
                summary="fixed",
                cause_code="capacity",
                resolution_code="restart",
            )
            if rng.random() < 0.3:
                row["detected_at"] = declared - timedelta(minutes=rng.uniform(1, 90))
            if rng.random() < 0.1:
                row["response_breached_at"] = declared + timedelta(minutes=15)
            if row["reopen_count"]:
                row["resolution_paused_seconds"] = int(rng.uniform(600, 7200))
        out.append(row)
    return out


async def load(url: str, n: int, now: datetime) -> float:
    db = Database(url)
    await db.upgrade()
    started = time.perf_counter()
    data = rows(n, now)
    for chunk in range(0, n, 5000):
        async with db.write() as session:
            await session.execute(insert(Incident), data[chunk : chunk + 5000])
    async with db.write() as session:
        await session.execute(text("ANALYZE"))
    await db.dispose()
    return time.perf_counter() - started


def run_report(url: str, days: int) -> dict:
    """Run the real `tocsin report` under GNU time: its wall time and peak RSS. (A child's ru_maxrss
    as seen by this process would include this process's own memory at fork time.)"""
    env = {**os.environ, "DATABASE_URL": url, "TOCSIN_CONFIG": str(ROOT / "app.yaml")}
    with tempfile.NamedTemporaryFile(mode="r", suffix=".txt") as measured:
        done = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "%M %e",
                "-o",
                measured.name,
                sys.executable,
                "-m",
                "bot.cli",
                "report",
                "--days",
                str(days),
                "--format",
                "json",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        peak_kb, seconds = measured.read().split()
    report = json.loads(done.stdout)
    return {
        "days": days,
        "process_seconds": float(seconds),
        "peak_rss_mb": round(int(peak_kb) / 1024, 1),
        "incidents_in_window": report["incidents"]["total"],
        "open_listed": len(report["open"]),
    }


def time_report_only(url: str, days: int) -> float:
    """The report's own time inside a process (no interpreter start-up or imports)."""
    code = (
        "import asyncio, time, sys\n"
        "from datetime import UTC, datetime\n"
        "from pathlib import Path\n"
        "from bot.config import load_policy\n"
        "from store import metrics\n"
        "from store.db import Database\n"
        "async def main():\n"
        f"    db = Database({url!r}); policy = load_policy(Path('app.yaml'))\n"
        "    async with db.read() as s:\n"
        "        t = time.perf_counter()\n"
        f"        await metrics.report(s, policy=policy, now=datetime.now(UTC), days={days})\n"
        "        print(time.perf_counter() - t)\n"
        "    await db.dispose()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    now = datetime.now(UTC)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for store, url in store_urls(args.stores, tmp, "report"):
            if store == "postgres":
                await reset_postgres(url)
            loaded = await load(url, args.incidents, now)
            for days in (7, 30, 90):
                result = {
                    "store": store,
                    "incidents": args.incidents,
                    "load_seconds": round(loaded, 1),
                    **run_report(url, days),
                }
                result["report_seconds"] = round(time_report_only(url, days), 3)
                results.append(result)
                print(
                    f"{store:<9} {args.incidents:>7} incidents, --days {days:>2} ({result['incidents_in_window']:>6} in window):"
                    f" report {result['report_seconds']:.3f} s; whole `tocsin report` process {result['process_seconds']:.2f} s,"
                    f" peak RSS {result['peak_rss_mb']} MB",
                    flush=True,
                )
    write_results("report", results)


if __name__ == "__main__":
    asyncio.run(main())
