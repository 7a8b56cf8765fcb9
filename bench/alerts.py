"""Alert benchmark: how many Alertmanager deliveries per second the real `tocsin serve` accepts, and their latency.

    BENCH_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/tocsin_alerts \\
        .venv/bin/python bench/alerts.py [--stores sqlite postgres] [--clients 1 8 32] [--warmup 2] [--duration 10]

Processes: this one posts the real Alertmanager payload of tests/payloads/alertmanager_firing.json from N
concurrent clients; `tocsin serve` and the fake Slack (bench/servers.py) each run in their own. Paths:

- `new`: every delivery has a new groupKey, so every one declares an incident (channel, card, announcement,
  leadership notice for P1, level-1 page, SLA timers); afterwards the outbox is drained and every card and
  announcement is checked to have reached Slack exactly once;
- `dedup`: every delivery repeats one groupKey whose incident is open: counted on it, coalesced;
- `storm`: 500 copies of a new groupKey sent at once, as in the test: time until all are answered, p99
  latency, and that exactly one incident came of it.

Requests per second count answers of 200 with the expected `result`; p50/p99 are per request, from the
client. Writes bench/results/alerts.json. The PostgreSQL database's public schema is dropped and recreated.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from common import drain, serve, spawn, stop, store_urls, wait_healthy, write_results  # noqa: E402

from tests.conftest import reset_postgres  # noqa: E402

TOKEN = "bench-alert-token-0123456789abcdef"
FIRING = json.loads((ROOT / "tests" / "payloads" / "alertmanager_firing.json").read_text())
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def delivery(key: str) -> bytes:
    return json.dumps({**FIRING, "groupKey": key}).encode()


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    return round(sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))] * 1000, 1)


async def drive(url: str, path: str, clients: int, warmup: float, duration: float) -> dict:
    """N clients posting back to back for warmup + duration seconds; figures from the measured part."""
    serial = itertools.count(1)
    run = random.randrange(10**9)
    expected = "created" if path == "new" else "deduplicated"
    latencies: list[float] = []
    errors = created = 0
    start = time.perf_counter()
    measure_from, stop = start + warmup, start + warmup + duration
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        if path == "dedup":  # the incident every delivery will be counted on
            async with session.post(url, data=delivery(f"dedup-{run}"), headers=HEADERS) as response:
                assert response.status == 200, await response.text()
            created += 1

        async def client() -> None:
            nonlocal errors, created
            while (began := time.perf_counter()) < stop:
                key = f"new-{run}-{next(serial)}" if path == "new" else f"dedup-{run}"
                try:
                    async with session.post(url, data=delivery(key), headers=HEADERS) as response:
                        answer = await response.json() if response.status == 200 else {}
                except aiohttp.ClientError:
                    answer = {}
                good = answer.get("result") == expected
                created += answer.get("result") == "created"
                if began >= measure_from:
                    latencies.append(time.perf_counter() - began)
                    errors += not good

        await asyncio.gather(*(client() for _ in range(clients)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "alerts_per_second": round((len(latencies) - errors) / duration, 1),
        "errors": errors,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else 0.0,
        "incidents_created": created,
    }


async def storm(url: str, copies: int = 500) -> dict:
    """`copies` deliveries of one new key, all sent at once."""
    key = f"storm-{random.randrange(10**9)}"
    body = delivery(key)
    connector = aiohttp.TCPConnector(limit=copies)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> tuple[float, str | None]:
            began = time.perf_counter()
            async with session.post(url, data=body, headers=HEADERS) as response:
                answer = await response.json() if response.status == 200 else {}
            return time.perf_counter() - began, answer.get("result")

        began = time.perf_counter()
        outcomes = await asyncio.gather(*(one() for _ in range(copies)))
        took = time.perf_counter() - began
    latencies = sorted(latency for latency, _ in outcomes)
    results = [result for _, result in outcomes]
    return {
        "copies": copies,
        "all_answered_seconds": round(took, 2),
        "alerts_per_second": round(copies / took, 1),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "created": results.count("created"),
        "deduplicated": results.count("deduplicated"),
        "errors": copies - results.count("created") - results.count("deduplicated"),
    }


async def bench_store(store: str, url: str, args: argparse.Namespace) -> list[dict]:
    if store == "postgres":
        await reset_postgres(url)
    fake, fake_urls = await spawn("bench/servers.py", "fake")
    port = 20000 + random.randint(0, 9999)
    base = f"http://127.0.0.1:{port}"
    serve_process = await serve(
        port=port,
        database_url=url,
        api_url=fake_urls["api_url"],
        secret="bench-signing-secret",
        TOCSIN_ALERT_TOKEN=TOKEN,
    )
    endpoint = f"{base}/alerts/alertmanager"
    results: list[dict] = []
    created = 0
    try:
        await wait_healthy(base)
        for clients in args.clients:
            for path in ("new", "dedup"):
                result = await drive(endpoint, path, clients, args.warmup, args.duration)
                created += result["incidents_created"]
                if path == "new":
                    result.update(await drain(base, fake_urls["stats_url"], created))
                results.append({"store": store, "clients": clients, "path": path, **result})
                print(
                    f"{store:<9} N={clients:<3} {path:<6} {result['alerts_per_second']:>7} alerts/s"
                    f"  p50 {result['p50_ms']:>6} ms  p99 {result['p99_ms']:>6} ms  errors {result['errors']}"
                    + (
                        f"  outbox drained in {result['outbox_drain_seconds']} s,"
                        f" exactly once: {result['exactly_once']}"
                        if path == "new"
                        else ""
                    ),
                    flush=True,
                )
        result = await storm(endpoint)
        created += result["created"]
        result.update(await drain(base, fake_urls["stats_url"], created))
        results.append({"store": store, "path": "storm", **result})
        print(
            f"{store:<9} storm  {result['copies']} copies answered in {result['all_answered_seconds']} s"
            f" ({result['alerts_per_second']} alerts/s)  p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms"
            f"  created {result['created']}, deduplicated {result['deduplicated']}, errors {result['errors']}",
            flush=True,
        )
    finally:
        await stop(serve_process, fake)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for store, url in store_urls(args.stores, tmp, "alerts"):
            results += await bench_store(store, url, args)
    write_results("alerts", results, warmup=args.warmup, duration=args.duration)


if __name__ == "__main__":
    asyncio.run(main())
