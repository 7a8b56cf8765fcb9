"""What the benchmarks share: which stores to run, on which database, the processes they start (the
fake Slack, the bare-Bolt ceiling, `tocsin serve`), and where their figures go."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def signed(secret: str, body: bytes) -> dict[str, str]:
    """The headers Slack sends with a form-encoded request body: its timestamp and v0 signature."""
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def postgres_url() -> str | None:
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")


def store_urls(stores: list[str], tmp: str, name: str) -> Iterator[tuple[str, str]]:
    """(store, database URL) for each store asked for: SQLite in `tmp`; PostgreSQL from
    BENCH_DATABASE_URL or TEST_DATABASE_URL, skipped with a word when neither is set."""
    pg = postgres_url()
    for store in stores:
        if store == "postgres" and not pg:
            print("postgres: skipped (set BENCH_DATABASE_URL or TEST_DATABASE_URL)")
            continue
        yield store, f"sqlite+aiosqlite:///{tmp}/{name}.db" if store == "sqlite" else pg  # type: ignore[misc]


def write_results(name: str, results: list[dict[str, Any]], **fields: Any) -> None:
    """bench/results/<name>.json: the machine, any run options, and the results."""
    out = ROOT / "bench" / "results" / f"{name}.json"
    document = {"machine": f"{os.cpu_count()} cores", **fields, "results": results}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


async def spawn(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """A helper process (bench/servers.py) and the JSON line it prints once it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    return process, json.loads(await asyncio.wait_for(process.stdout.readline(), 30))


async def serve(
    *, port: int, database_url: str, api_url: str, secret: str, **env: str
) -> asyncio.subprocess.Process:
    """The real `tocsin serve` on 127.0.0.1:`port`, against the fake Slack at `api_url`."""
    environment = {
        **os.environ,
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": secret,
        "SLACK_API_URL": api_url,
        "DATABASE_URL": database_url,
        "TOCSIN_CONFIG": str(ROOT / "app.yaml"),
        "TOCSIN_LOG_LEVEL": "WARNING",
        **env,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)),
        cwd=str(ROOT),
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def health(base: str) -> dict[str, Any]:
    """`tocsin serve`'s /healthz answer, or {} while it is not healthy."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as response:
        return await response.json() if response.status == 200 else {}


async def wait_healthy(base: str) -> None:
    for _ in range(300):
        try:
            if await health(base):
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("tocsin serve did not become healthy")


async def _wait(base: str, ready: Callable[[dict[str, Any]], bool], limit: float) -> tuple[bool, float]:
    """Poll /healthz until `ready(report)` or `limit` seconds; (whether it got ready, seconds taken)."""
    began = time.perf_counter()
    done = False
    while not done and time.perf_counter() - began < limit:
        done = ready(await health(base))
        if not done:
            await asyncio.sleep(0.05)
    return done, time.perf_counter() - began


def _outbox_empty(report: dict[str, Any]) -> bool:
    return report.get("outbox", {}).get("backlog") == 0


async def settle(base: str, limit: float = 600) -> float:
    """Wait until `tocsin serve` has caught up with a run's after-effects: no timer overdue and nothing
    left in the outbox. Returns the seconds it took."""
    _, took = await _wait(
        base, lambda r: _outbox_empty(r) and not r.get("timers", {}).get("oldest_due_seconds"), limit
    )
    return took


async def slack_stats(stats_url: str) -> dict[str, Any]:
    """The fake Slack's figures (bench/servers.py): messages by metadata event type, and problems seen."""
    async with aiohttp.ClientSession() as session, session.get(stats_url) as response:
        return await response.json()


async def slack_events(stats_url: str) -> dict[str, int]:
    """How many messages the fake Slack holds, by metadata event type."""
    return {kind: int(n) for kind, n in (await slack_stats(stats_url))["events"].items()}


async def drain(base: str, stats_url: str, incidents: int) -> dict[str, Any]:
    """Wait until the outbox is empty (10 minutes at most); then each incident's card and announcement
    should be in the fake Slack, once each."""
    emptied, drained = await _wait(base, _outbox_empty, 600)
    await asyncio.sleep(1)
    stats = await slack_stats(stats_url)
    seen = int(stats["events"].get("incident_declared", 0))
    return {
        "outbox_drained": emptied,
        "outbox_drain_seconds": round(drained, 2),
        "cards_and_announcements": seen,
        "expected": 2 * incidents,
        "exactly_once": emptied and seen == 2 * incidents,
        "slack_problems": stats["problems"],
    }


async def stop(*processes: asyncio.subprocess.Process) -> None:
    for process in processes:
        if process.returncode is None:
            process.terminate()
            await process.wait()


_TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """User plus system CPU seconds of process `pid` (all its threads), 0 once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: fields 14 and 15 of stat(5)


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds over every core since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / _TICK, sum(values[:8]) / _TICK


class CpuMeter:
    """Where the machine's CPU went during a run: the server under test, this load generator, the
    PostgreSQL server's processes and the whole machine, in CPU seconds between `start()` and `stop()`."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._began: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        busy, total = _machine_busy()
        own = os.times()
        return {
            "server": _process_cpu(self.server_pid),
            "loadgen": own.user + own.system,
            "postgres": sum(_process_cpu(pid) for pid in _postgres_pids()),
            "busy": busy,
            "total": total,
            "wall": time.perf_counter(),
        }

    def start(self) -> None:
        self._began = self._sample()

    def stop(self, requests: int) -> dict[str, float]:
        """CPU ms per request for each, and the share of one core the server used."""
        now = self._sample()
        spent = {key: now[key] - self._began[key] for key in now}
        per = 1000 / requests if requests else 0.0
        return {
            "server_cpu_ms_per_request": round(spent["server"] * per, 3),
            "loadgen_cpu_ms_per_request": round(spent["loadgen"] * per, 3),
            "postgres_cpu_ms_per_request": round(spent["postgres"] * per, 3),
            "machine_busy_share": round(spent["busy"] / spent["total"], 3) if spent["total"] else 0.0,
            "server_core_share": round(spent["server"] / spent["wall"], 3) if spent["wall"] else 0.0,
        }
