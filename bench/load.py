"""Load benchmark: the real `tocsin serve` against the fake Slack, next to a bare-Bolt ceiling.

    TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/load.py [--stores sqlite postgres] [--clients 1 8 32] [--warmup 3] [--duration 15]

Processes: this one generates the load (aiohttp, N concurrent clients, requests signed as Slack signs
them); `tocsin serve`, the fake Slack and the bare Bolt app each run in their own. The database holds
100,000 incidents: 10,000 under investigation (`read`, `write`), 40,000 in triage (`click` acknowledges
a fresh one each time) and 50,000 closed. For each store and N it measures, for the bare ceiling and
the paths `read` (/incident show), `write` (/incident note), `declare` (/incident declare P3 ...) and
`click` (the Acknowledge button): requests/s and the ratio to the ceiling (measured before and after each
path, the second once the bot has caught up with the path's outbox and timers; the ratio is to the mean
of the two), p50/p95/p99 ack latency,
errors, the server's peak RSS, and for `declare` the time until the outbox has drained and whether
every card and announcement reached Slack exactly once; for `click`, acked before its work, whether every
click's acknowledgement reached Slack. For comparison, not as the ceiling, it also
measures the bare app acking the Acknowledge button (`bare-bolt-click`), and the bare app reading one row
by primary key (`bare-bolt-select`) or inserting one (`bare-bolt-insert`, the issue's reference for one
write) through SQLAlchemy as Tocsin does on that store; their ratios are to the ceiling run just before
them. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from common import (  # noqa: E402
    CpuMeter,
    drain,
    serve,
    settle,
    slack_events,
    slack_stats,
    spawn,
    stop,
    store_urls,
    wait_healthy,
    write_results,
)
from sqlalchemy import insert, text  # noqa: E402

from store.db import Database  # noqa: E402
from store.models import Incident, State  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402

SECRET = "bench-signing-secret"
BENCH_CHANNEL = "C0BENCH"
READ, TRIAGE, TOTAL = 10_000, 40_000, 100_000
PATHS = ("read", "write", "declare", "click")


def sign(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command(text_: str, channel: str) -> bytes:
    return urlencode(
        {
            "token": "x",
            "team_id": "T0001",
            "team_domain": "bench",
            "channel_id": channel,
            "channel_name": "bench",
            "user_id": "U0BENCH",
            "user_name": "bench",
            "command": "/incident",
            "text": text_,
            "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": "http://127.0.0.1:9/unused",
            "trigger_id": "1.2.3",
        }
    ).encode()


def click(number: int) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BENCH", "username": "bench", "team_id": "T0001"},
        "api_app_id": "A1",
        "team": {"id": "T0001", "domain": "bench"},
        "container": {"type": "message", "message_ts": "1.1", "channel_id": BENCH_CHANNEL},
        "channel": {"id": BENCH_CHANNEL, "name": "bench"},
        "trigger_id": "1.2.3",
        "response_url": "http://127.0.0.1:9/unused",
        "message": {"ts": "1.1", "text": "card"},
        "actions": [
            {
                "action_id": "incident_acknowledge",
                "block_id": "incident_actions",
                "value": str(number),
                "type": "button",
                "action_ts": "1",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


class Paths:
    """Request bodies and success checks for each path."""

    def __init__(self) -> None:
        self.fresh = itertools.count(READ + 1)
        self.serial = itertools.count(1)

    def body(self, path: str) -> bytes:
        if path == "bare-click":  # any incident: the bare app only acks
            return click(random.randint(1, TOTAL))
        if path in ("read", "ceiling", "reference-read"):
            return command(f"INC-{random.randint(1, READ)} show", BENCH_CHANNEL)
        if path in ("write", "reference-write"):
            return command(
                f"INC-{random.randint(1, READ)} note bench note {next(self.serial)}", BENCH_CHANNEL
            )
        if path == "declare":
            return command(f"declare P3 Load test {next(self.serial)}", "C_GENERAL")
        return click(next(self.fresh))

    @staticmethod
    def ok(path: str, status: int, body: str) -> bool:
        marker = {"read": "INC-", "write": "Noted", "declare": "Declared"}.get(path, "")
        return status == 200 and marker in body and ":warning:" not in body


async def preload(url: str) -> None:
    db = Database(url)
    await db.upgrade()
    now = datetime.now(UTC)
    rows = []
    for number in range(1, TOTAL + 1):
        declared = now - timedelta(minutes=number % 5000)
        row = dict(
            number=number,
            version=1,
            title=f"Preloaded incident {number}",
            description="",
            category="other",
            priority="P3",
            reporter="U1",
            channel_id=BENCH_CHANNEL,
            declared_at=declared,
            escalation_level=1,
            reopen_count=0,
            resolution_paused_seconds=0,
            level_paged_at=declared,
            last_page_at=declared,
        )
        if number <= READ:
            row.update(
                state=State.INVESTIGATING,
                acknowledged_at=declared,
                acknowledged_by="U2",
                commander="U2",
                active_since=declared,
            )
        elif number <= READ + TRIAGE:
            row.update(state=State.TRIAGE)
        else:
            row.update(
                state=State.CLOSED,
                acknowledged_at=declared,
                resolved_at=declared,
                closed_at=declared,
                summary="done",
            )
        rows.append(row)
    for chunk in range(0, TOTAL, 5000):
        async with db.write() as session:
            await session.execute(insert(Incident), rows[chunk : chunk + 5000])
    async with db.write() as session:
        if not db.is_sqlite:  # rows were inserted with explicit ids: move the id sequence past them
            await session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('incidents', 'number'), (SELECT max(number) FROM incidents))"
                )
            )
        await session.execute(text("ANALYZE"))
    await db.dispose()


async def drive(
    url: str, path: str, paths: Paths, clients: int, warmup: float, duration: float, *, server_pid: int
) -> dict:
    latencies: list[float] = []
    errors = succeeded = completed = 0
    start = time.perf_counter()
    measure_from, stop = start + warmup, start + warmup + duration
    meter = CpuMeter(server_pid)
    cpu: dict[str, float] = {}

    async def metered() -> None:
        nonlocal cpu
        await asyncio.sleep(warmup)
        meter.start()
        before = completed
        await asyncio.sleep(duration)
        cpu = meter.stop(completed - before)

    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors, succeeded, completed
            while (began := time.perf_counter()) < stop:
                body = paths.body(path)
                try:
                    async with session.post(url, data=body, headers=sign(body)) as response:
                        good = Paths.ok(path, response.status, await response.text())
                except aiohttp.ClientError:
                    good = False
                succeeded += good
                completed += 1
                if began >= measure_from:
                    latencies.append(time.perf_counter() - began)
                    errors += 0 if good else 1

        await asyncio.gather(metered(), *(worker() for _ in range(clients)))
    latencies.sort()

    def pct(share: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000, 2)
            if latencies
            else 0.0
        )

    return {
        "requests": len(latencies),
        "succeeded_incl_warmup": succeeded,
        "rps": round(len(latencies) / duration, 1),
        "errors": errors,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
        **cpu,
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _cpu(result: dict) -> str:
    """Where the CPU went: the server's CPU per request and share of a core, the database server's
    and the load generator's CPU per request, and how busy the whole machine was."""
    if "server_cpu_ms_per_request" not in result:
        return ""
    return (
        f"  cpu: server {result['server_cpu_ms_per_request']} ms/req ({result['server_core_share']:.0%} of a core)"
        f", postgres {result['postgres_cpu_ms_per_request']}, loadgen {result['loadgen_cpu_ms_per_request']}"
        f", machine {result['machine_busy_share']:.0%} busy"
    )


def _print_bare(store: str, clients: int, result: dict, label: str = "bare-bolt") -> None:
    print(
        f"{store:<9} N={clients:<3} {label:<11} {result['rps']:>8} req/s"
        + (f"  ratio {result['ratio']:<6}" if "ratio" in result else "")
        + f"  p50 {result['p50_ms']:>7} ms  p99 {result['p99_ms']:>7} ms"
        + _cpu(result),
        flush=True,
    )


async def bench_store(store: str, url: str, args: argparse.Namespace) -> list[dict]:
    if store == "postgres":
        await reset_postgres(url)
    await preload(url)
    fake, fake_urls = await spawn("bench/servers.py", "fake")
    bare, bare_urls = await spawn("bench/servers.py", "bare", SECRET)
    reference_url = url.rsplit("/", 1)[0] + "/reference.db" if store == "sqlite" else url
    reference, reference_urls = await spawn("bench/servers.py", "reference", SECRET, reference_url)
    port = 20000 + random.randint(0, 9999)
    # This fake Slack enforces no quotas, and this bench measures Tocsin's acks and its own delivery;
    # paced to Slack's real quotas, the outbox of a few hundred declares would take an hour to drain
    # (bench/storm.py measures the pacing, against a fake that enforces the quotas).
    server = await serve(
        port=port,
        database_url=url,
        api_url=fake_urls["api_url"],
        secret=SECRET,
        TOCSIN_SLACK_QUOTA_SCALE="100",
    )
    tocsin = f"http://127.0.0.1:{port}/slack/events"
    results = []
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
        paths = Paths()
        declares = 0
        for clients in args.clients:
            # The machine's speed drifts from minute to minute, so the ceiling is measured before and after
            # each path, and the path's ratio is to the mean of the two runs either side of it.
            ceiling = await drive(
                bare_urls["url"], "ceiling", paths, clients, args.warmup, args.duration, server_pid=bare.pid
            )
            results.append({"store": store, "clients": clients, "path": "bare-bolt", **ceiling, "ratio": 1.0})
            _print_bare(store, clients, ceiling)
            if "click" in args.paths:  # for comparison: what Bolt alone does with a button's payload
                bare_click = await drive(
                    bare_urls["url"],
                    "bare-click",
                    paths,
                    clients,
                    args.warmup,
                    args.duration,
                    server_pid=bare.pid,
                )
                results.append({"store": store, "clients": clients, "path": "bare-bolt-click", **bare_click})
                _print_bare(store, clients, bare_click, "bare-click")
            # For comparison: the same bare app reading or writing one row through SQLAlchemy
            # (bench/servers.py `reference`): what one bare statement costs on this store.
            for floor, like in (
                ("bare-bolt-select", "reference-read"),
                ("bare-bolt-insert", "reference-write"),
            ):
                one = await drive(
                    reference_urls["url"],
                    like,
                    paths,
                    clients,
                    args.warmup,
                    args.duration,
                    server_pid=reference.pid,
                )
                one["ratio"] = round(one["rps"] / ceiling["rps"], 3) if ceiling["rps"] else None
                results.append({"store": store, "clients": clients, "path": floor, **one})
                _print_bare(store, clients, one, "bare+" + floor.rsplit("-", 1)[1])
            for path in args.paths:
                acknowledged = (await slack_events(fake_urls["stats_url"])).get("incident_acknowledged", 0)
                result = await drive(
                    tocsin, path, paths, clients, args.warmup, args.duration, server_pid=server.pid
                )
                if path == "declare":
                    declares += result["succeeded_incl_warmup"]
                    result.update(await drain(f"http://127.0.0.1:{port}", fake_urls["stats_url"], declares))
                # The next ceiling runs once the bot has caught up (relay, sweeps), not beside it.
                result["settled_seconds"] = round(await settle(f"http://127.0.0.1:{port}"), 2)
                if path == "click":  # a click is acked before its work: did every one reach Slack?
                    events = await slack_events(fake_urls["stats_url"])
                    landed = events.get("incident_acknowledged", 0) - acknowledged
                    result.update(
                        acknowledgements_in_slack=landed,
                        every_click_landed=landed == result["succeeded_incl_warmup"],
                    )
                after = await drive(
                    bare_urls["url"],
                    "ceiling",
                    paths,
                    clients,
                    args.warmup,
                    args.duration,
                    server_pid=bare.pid,
                )
                results.append(
                    {"store": store, "clients": clients, "path": "bare-bolt", **after, "ratio": 1.0}
                )
                around = (ceiling["rps"] + after["rps"]) / 2
                result.update(
                    store=store,
                    clients=clients,
                    path=path,
                    ceiling_rps=round(around, 1),
                    ratio=round(result["rps"] / around, 3) if around else None,
                )
                ceiling = after
                results.append(result)
                print(
                    f"{store:<9} N={clients:<3} {path:<9} {result['rps']:>8} req/s  ratio {result['ratio']:<6} p50 {result['p50_ms']:>7} ms"
                    f"  p95 {result['p95_ms']:>7} ms  p99 {result['p99_ms']:>7} ms  errors {result['errors']}"
                    + (
                        f"  outbox drained in {result['outbox_drain_seconds']} s, exactly once: {result['exactly_once']}"
                        if path == "declare"
                        else f"  in Slack {result['acknowledgements_in_slack']}, every click landed: {result['every_click_landed']}"
                        if path == "click"
                        else ""
                    )
                    + _cpu(result),
                    flush=True,
                )
                _print_bare(store, clients, after)
        rss = peak_rss_mb(server.pid)
        for result in results:
            result["server_peak_rss_mb"] = rss
        print(f"{store:<9} tocsin serve peak RSS {rss} MB with {TOTAL:,} incidents", flush=True)
        stats = await slack_stats(fake_urls["stats_url"])
        results.append(
            {"store": store, "path": "slack", "events": stats["events"], "problems": stats["problems"]}
        )
    finally:
        await stop(server, fake, bare, reference)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for store, url in store_urls(args.stores, tmp, "load"):
            results += await bench_store(store, url, args)
    write_results("load", results, warmup=args.warmup, duration=args.duration)


if __name__ == "__main__":
    asyncio.run(main())
