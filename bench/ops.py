"""What one request's work costs, in process, without HTTP or Bolt: the use cases behind the load paths.

    TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/ops.py [--stores sqlite postgres] [--rounds 4] [--each 200]

Loads 100,000 incidents (as bench/load.py does), then times, one after another on one event loop:
`show` (find + render the private answer), `note` (one write transaction), `ack` (the Acknowledge
click's transaction: state, timeline, timers, outbox) and `declare` (the whole declare transaction,
similar-incident search included; `declare-common` with a title word that all 50,000 done incidents
share, so the search finds matches to rank). Prints the best of `--rounds` rounds of `--each` calls, in
microseconds per call, and the SQL statements each call runs; writes bench/results/ops.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import store_urls, write_results  # noqa: E402
from load import READ, TRIAGE, preload  # noqa: E402

from bot.app import Tocsin  # noqa: E402
from bot.config import load_settings  # noqa: E402
from handlers import commands, flows  # noqa: E402
from store import service  # noqa: E402
from store.machine import Action  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402


async def measure(url: str, rounds: int, each: int) -> list[dict]:
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": "bench",
            "DATABASE_URL": url,
            "TOCSIN_CONFIG": str(ROOT / "app.yaml"),
        }
    )
    deps = Tocsin(settings).deps
    statements: Counter[str] = Counter()

    def count(_sql: str) -> None:
        statements["n"] += 1

    deps.db.trace(count)

    fresh = itertools.count(READ + 1)
    serial = itertools.count(1)

    def invocation(verb: str, rest: str = "") -> commands.Invocation:
        ref = f"INC-{random.randint(1, READ)}"
        return commands.Invocation("U1", "C1", verb, rest, ref, "", "")

    acting = flows.UseCaseContext.of(deps, actor="U1", channel="C1")

    async def show() -> None:
        await commands.HANDLERS["show"](invocation("show"), acting, deps)

    async def note() -> None:
        await commands.HANDLERS["note"](invocation("note", "bench note"), acting, deps)

    async def ack() -> None:
        await flows.change_incident(
            deps,
            ref=f"INC-{next(fresh)}",
            channel=None,
            use_case=lambda s, i: service.apply(
                s, i, Action.ACK, policy=deps.policy, actor="U1", now=deps.clock()
            ),
        )

    async def declare() -> None:
        await flows.declare(
            deps, title=f"Load test {next(serial)}", priority="P3", reporter="U1", origin_channel="C1"
        )

    async def declare_common() -> None:  # "incident" is in every preloaded title, 50,000 of them done
        await flows.declare(
            deps, title=f"Checkout incident {next(serial)}", priority="P3", reporter="U1", origin_channel="C1"
        )

    results = []
    paths: dict[str, Callable[[], Awaitable[None]]] = {
        "show": show,
        "note": note,
        "ack": ack,
        "declare": declare,
        "declare-common": declare_common,
    }
    assert rounds * each + 20 < TRIAGE
    for name, call in paths.items():
        for _ in range(20):
            await call()
        best = []
        statements.clear()
        for _ in range(rounds):
            began = time.perf_counter()
            for _ in range(each):
                await call()
            best.append((time.perf_counter() - began) / each * 1e6)
        results.append(
            {
                "op": name,
                "best_us": round(min(best)),
                "rounds_us": [round(b) for b in best],
                "statements_per_call": round(statements["n"] / (rounds * each), 1),
            }
        )
    await deps.db.dispose()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--each", type=int, default=200)
    args = parser.parse_args()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for store, url in store_urls(args.stores, tmp, "ops"):
            if store == "postgres":
                await reset_postgres(url)
            await preload(url)
            for result in await measure(url, args.rounds, args.each):
                result["store"] = store
                out.append(result)
                print(
                    f"{store:<9} {result['op']:<8} {result['best_us']:>7} µs per call"
                    f"  ({result['statements_per_call']} SQL statements; rounds {result['rounds_us']})",
                    flush=True,
                )
    write_results("ops", out)


if __name__ == "__main__":
    asyncio.run(main())
