"""Web view benchmark: issue 29's targets over 100,000 incidents, on SQLite and PostgreSQL.

    .venv/bin/python bench/web.py [--incidents 100000] [--stores sqlite postgres] [--requests 50]
                                  [--streams 50 200] [--seconds 20]

Loads the incidents (bench/report.py's: declared over 120 days, most resolved or closed, some cancelled),
with their timelines (declared, acknowledged, a note, a stakeholder update, resolved, closed: about six
rows each), a delivered card and announcement each in the outbox, action items for one in ten, and
OPEN incidents of mixed priorities and states declared in the last hours, with their pending timers.
bench/report.py leaves 2% of its incidents open over the whole 120 days; here those are resolved too,
so the open ones are the recent few a team works on. The closed incident in the middle
(`shown_number`) has SHOWN_EXTRA more notes and updates and three action items: its page is the one
measured.

Then the real web app (bot/app.py's `Tocsin(settings).web_app()`, relay and scheduler included) serves
on 127.0.0.1 in this process, signed in to through the fake Slack's Sign in with Slack (in this
process too), and is measured:
  - each page: `--requests` GETs one after another on a warm keep-alive connection, after a warm-up.
    "server" is the time from the first of the app's middlewares receiving the request to its answer
    (a timing middleware put first: the session check, the handler and the rendering); "round trip" is
    the client's time for the whole request on localhost, so it adds the local round trip and the
    client's own sending and reading. Median and p95 of each;
  - live updates: `--streams` concurrent `GET /live/dashboard` streams (server-sent events) opened by a
    child process, each having read its first event; then, for `--seconds`, an incident is declared,
    acknowledged, updated or resolved through the store every 2 s, so the dashboard's live part changes,
    while this process's CPU time (time.process_time(): the server, the relay and scheduler, the fake
    Slack and the store calls; not the clients) is measured. The same window with no stream open is the
    baseline: CPU ms per open page per second is (window - baseline) / (pages x seconds). PostgreSQL's
    own processes' CPU is given beside it.

PostgreSQL comes from BENCH_DATABASE_URL or TEST_DATABASE_URL (its public schema is dropped and
recreated!). Prints a table and writes bench/results/web.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import CpuMeter, settle, store_urls, write_results  # noqa: E402
from report import rows  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from yarl import URL  # noqa: E402

from bot.app import Tocsin  # noqa: E402
from bot.config import load_policy, load_settings  # noqa: E402
from store import service, timers  # noqa: E402
from store.db import Database  # noqa: E402
from store.machine import Action  # noqa: E402
from store.models import ActionItem, Incident, OutboxMessage, State, TimelineEntry, Timer  # noqa: E402
from store.policy import Policy  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402
from tests.fakeslack import FakeSlack  # noqa: E402
from tests.processes import free_port  # noqa: E402

OPEN = 30  # open incidents, declared in the last hours
SHOWN_EXTRA = 50  # more notes and updates on the incident whose page is measured
CHUNK = 5000
WARM_UP = 5
CHANGE_EVERY = 2.0  # seconds between changes while the live streams are measured
USER = "U0BENCH"
PAGE_TARGET = 0.1  # seconds, the targets at the server
REPORT_TARGET = 1.0
LIVE_TARGET = 1.0  # CPU ms per open page per second
SUMMARIES = [
    "Rolled back the deploy that exhausted the connection pool",
    "Restarted the stuck queue consumers after the broker failover",
    "Raised the disk quota on the primary database volume",
    "Renewed the expired certificate on the edge load balancer",
    "Reverted the feature flag that broke checkout for some users",
    "The upstream payment provider fixed its outage",
]
APP_CHANNELS = [("C0123ANNOUNCE", "incidents"), ("C0123LEADERS", "leadership"), ("C0123ONCALL", "oncall")]
OPEN_STATES = [State.TRIAGE, State.INVESTIGATING, State.IDENTIFIED, State.MONITORING]


# ------------------------------------------------------------------------------------------ the data


def incidents(n: int, now: datetime, policy: Policy, rng: random.Random) -> list[dict[str, Any]]:
    """`n` incidents numbered in the order they were declared; the OPEN declared last are open."""
    past = rows(n - OPEN, now)
    for row in past:
        as_kept(row, now, policy, rng)
    for k in range(OPEN):
        declared = now - timedelta(minutes=rng.uniform(2, 600))
        state = OPEN_STATES[k % len(OPEN_STATES)]
        row = dict(
            version=1,
            title=rng.choice(SUMMARIES).lower(),  # after "Incident <number>: ", below
            description="",
            category=rng.choice(policy.categories),
            priority=["P1", "P2", "P3", "P4"][(k + k // 4) % 4],
            reporter="U1",
            declared_at=declared,
            escalation_level=rng.choice([1, 1, 2, 3]),
            reopen_count=0,
            resolution_paused_seconds=0,
            state=state,
        )
        if state is not State.TRIAGE:
            acknowledged = min(declared + timedelta(minutes=rng.uniform(1, 20)), now)
            row.update(
                acknowledged_at=acknowledged, acknowledged_by="U2", commander="U2", active_since=acknowledged
            )
        past.append(row)
    past.sort(key=lambda row: row["declared_at"])
    for number, row in enumerate(past, 1):
        title = f"Incident {number}" + (f": {row['title']}" if row["state"] in OPEN_STATES else "")
        row.update(number=number, title=title, channel_id=f"C{number:09d}", channel_name=f"inc-{number}")
    return past


def as_kept(row: dict[str, Any], now: datetime, policy: Policy, rng: random.Random) -> None:
    """One of bench/report.py's rows as a store that has been running would hold it: nothing in the
    future (an incident declared lately was acknowledged and resolved sooner), closed only once closed,
    codes from app.yaml, and the open ones resolved."""
    declared = row["declared_at"]
    if row["state"] is State.CANCELLED:
        row["cancelled_at"] = min(row["cancelled_at"], now)
        return
    acknowledged = row["acknowledged_at"]
    if acknowledged > now:
        acknowledged = declared + (now - declared) * rng.random()
    resolved = row.get("resolved_at") or acknowledged + timedelta(hours=rng.uniform(0.2, 8))
    if resolved > now:
        resolved = acknowledged + (now - acknowledged) * rng.random()
    closed = resolved + timedelta(days=1)
    row.update(
        acknowledged_at=acknowledged,
        acknowledged_by="U2",
        active_since=acknowledged,
        commander="U2",
        resolved_at=resolved,
        state=State.CLOSED if closed <= now else State.RESOLVED,
        closed_at=closed if closed <= now else None,
        summary=rng.choice(SUMMARIES),
        cause_code=rng.choice(policy.cause_codes),
        resolution_code=rng.choice(policy.resolution_codes),
    )


def entry(
    row: dict[str, Any], at: datetime, actor: str, kind: str, before: Any, after: Any, said: Any
) -> dict[str, Any]:
    return dict(
        incident_number=row["number"],
        at=at,
        actor=actor,
        kind=kind,
        from_value=before,
        to_value=after,
        text=said,
    )


def timeline(row: dict[str, Any], now: datetime, extra: int = 0) -> list[dict[str, Any]]:
    """What the incident's life wrote: declared, then as far as it got, with a note and an update."""
    declared, acknowledged = row["declared_at"], row.get("acknowledged_at")
    number = row["number"]
    out = [entry(row, declared, row["reporter"], "declared", None, "triage", row["title"])]
    if row["state"] is State.CANCELLED:
        return [*out, entry(row, row["cancelled_at"], "U2", "cancel", "triage", "cancelled", "a duplicate")]
    if acknowledged is None:
        return out
    out.append(entry(row, acknowledged, "U2", "ack", "triage", "investigating", None))
    end = row.get("resolved_at") or now
    step = (end - acknowledged) / (extra + 3)
    for k in range(extra + 2):
        at = acknowledged + step * (k + 1)
        if k % 2 == 0:
            out.append(
                entry(row, at, "U2", "note", None, None, f"INC-{number}: checked the graphs, step {k}")
            )
        else:
            said = f"We are working on INC-{number}; next update within the hour ({k})"
            out.append(entry(row, at, "U2", "update", None, None, said))
    if row.get("resolved_at"):
        out.append(
            entry(row, row["resolved_at"], "U2", "resolve", "investigating", "resolved", row["summary"])
        )
    if row.get("closed_at"):
        out.append(entry(row, row["closed_at"], "tocsin", "close", "resolved", "closed", None))
    return out


def action_items(row: dict[str, Any], count: int) -> list[dict[str, Any]]:
    resolved = row["resolved_at"]
    return [
        dict(
            incident_number=row["number"],
            number=k,
            owner="U2",
            text=f"Follow-up {k} of INC-{row['number']}",
            due_on=(resolved + timedelta(days=5 * k)).date(),
            created_at=resolved,
            created_by="U2",
            done_at=resolved + timedelta(days=1) if k == 1 else None,
            done_by="U2" if k == 1 else None,
        )
        for k in range(1, count + 1)
    ]


def outbox(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The incident's card and announcement, delivered long ago."""
    at = row["declared_at"]
    return [
        dict(
            incident_number=row["number"],
            created_at=at,
            op="post",
            payload={},
            attempts=1,
            next_attempt_at=at,
            delivered_at=at,
            urgency=1,
            lane="main",
        )
        for _ in range(2)
    ]


def shown_number(data: list[dict[str, Any]]) -> int:
    """The resolved or closed incident in the middle: its page is the one measured."""
    middle = len(data) // 2
    return next(r["number"] for r in data[middle:] if r["state"] in (State.RESOLVED, State.CLOSED))


async def load(url: str, n: int, now: datetime, policy: Policy) -> tuple[float, int, list[str]]:
    """The store as the docstring describes it: (seconds taken, the number of the incident shown, the
    open incidents' channels)."""
    db = Database(url)
    await db.upgrade()
    started = time.perf_counter()
    rng = random.Random(29)
    data = incidents(n, now, policy, rng)
    shown = shown_number(data)
    for chunk in range(0, n, CHUNK):
        part = data[chunk : chunk + CHUNK]
        entries, items, messages, pending = [], [], [], []
        for row in part:
            extra = SHOWN_EXTRA if row["number"] == shown else 0
            entries += timeline(row, now, extra)
            messages += outbox(row)
            if row["number"] == shown:
                items += action_items(row, 3)
            elif row.get("resolved_at") and row["number"] % 10 == 0:
                items += action_items(row, 2)
            if row["state"] in OPEN_STATES:
                for planned in timers.plan(Incident(**row), policy=policy):
                    pending.append(
                        dict(
                            incident_number=row["number"],
                            kind=planned.kind,
                            key=planned.key,
                            due_at=planned.due_at,
                            created_at=row["declared_at"],
                        )
                    )
        async with db.write() as session:
            await session.execute(insert(Incident), part)
            await session.execute(insert(TimelineEntry), entries)
            await session.execute(insert(OutboxMessage), messages)
            if items:
                await session.execute(insert(ActionItem), items)
            if pending:
                await session.execute(insert(Timer), pending)
    async with db.write() as session:
        if not db.is_sqlite:  # numbers were given, so the next one declared must follow them
            await session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('incidents', 'number'), max(number)) FROM incidents"
                )
            )
        await session.execute(text("ANALYZE"))
    await db.dispose()
    channels = [row["channel_id"] for row in data if row["state"] in OPEN_STATES]
    return time.perf_counter() - started, shown, channels


# ------------------------------------------------------------------------------------------ the server


@dataclass
class Served:
    """The app on 127.0.0.1, the fake Slack it signs in through, and what the timing middleware saw."""

    tocsin: Tocsin
    url: str
    fake: FakeSlack
    runner: web.AppRunner
    handled: list[float] = field(default_factory=list)  # seconds, each request but the live streams'

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.fake.stop()


async def serve(database_url: str, channels: list[str]) -> Served:
    """The app, once the relay and the scheduler have caught up with the open incidents' overdue timers."""
    fake = FakeSlack()
    await fake.start()
    for channel, name in (*APP_CHANNELS, *((c, f"inc-{c}") for c in channels)):
        fake.add_channel(channel, name)
    fake.add_user(USER, "bench")
    fake.sign_in_as(user=USER, name="Bench")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = load_settings(
        {
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": "bench-secret",
            "SLACK_API_URL": fake.api_url,
            "DATABASE_URL": database_url,
            "TOCSIN_CONFIG": str(ROOT / "app.yaml"),
            "TOCSIN_SLACK_QUOTA_SCALE": "100",
            "SLACK_CLIENT_ID": fake.client_id,
            "SLACK_CLIENT_SECRET": fake.client_secret,
            "TOCSIN_PUBLIC_URL": url,
            "SLACK_AUTHORIZE_URL": fake.authorize_url,
        }
    )
    tocsin = Tocsin(settings)
    app = tocsin.web_app()
    handled: list[float] = []

    @web.middleware
    async def timed(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/live/"):
            return await handler(request)
        began = time.perf_counter()
        try:
            return await handler(request)
        finally:
            handled.append(time.perf_counter() - began)

    app.middlewares.insert(0, timed)  # first: it times the guard too
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await settle(url, limit=120)
    return Served(tocsin=tocsin, url=url, fake=fake, runner=runner, handled=handled)


async def sign_in(http: aiohttp.ClientSession, url: str) -> str:
    """Through /login, the fake Slack's authorize page and /auth/callback, one redirect at a time (the
    jar keeps the cookies); the session's Cookie header."""
    target = f"{url}/login"
    for _ in range(10):
        async with http.get(target, allow_redirects=False) as response:
            await response.read()
            if response.status not in (301, 302, 303, 307):
                break
            location = response.headers["Location"]
            target = location if "://" in location else url + location
    if response.status != 200:
        raise RuntimeError(f"signing in ended at {target} with {response.status}")
    cookies = http.cookie_jar.filter_cookies(URL(url))
    return "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    target: float  # seconds
    shows: str  # text the page holds at least `times` times, so that what is timed is the page
    times: int = 1


def pages_of(shown: str) -> list[Page]:
    return [
        Page("dashboard", "/", PAGE_TARGET, "data-incident=", OPEN),
        Page("list, first page", "/incidents", PAGE_TARGET, "data-incident=", 50),
        Page("filtered list", "/incidents?priority=P1&q=incident", PAGE_TARGET, "data-incident=", 50),
        Page("incident page", f"/incidents/{shown}", PAGE_TARGET, "checked the graphs", SHOWN_EXTRA // 2),
        Page("90-day report", "/reports?days=90", REPORT_TARGET, "<svg", 5),
    ]


async def time_page(served: Served, http: aiohttp.ClientSession, page: Page, requests: int) -> dict[str, Any]:
    path, target = page.path, page.target

    async def get() -> tuple[float, bytes]:
        began = time.perf_counter()
        async with http.get(served.url + path, allow_redirects=False) as response:
            body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status}")
        return time.perf_counter() - began, body

    for _ in range(WARM_UP):
        _, body = await get()
    if body.decode().count(page.shows) < page.times:
        raise RuntimeError(f"{path} shows {page.shows!r} fewer than {page.times} times")
    served.handled.clear()
    trips, size = [], 0
    for _ in range(requests):
        took, body = await get()
        trips.append(took)
        size = len(body)
    handled = list(served.handled)
    ms = 1000
    return {
        "page": page.name,
        "path": path,
        "requests": requests,
        "bytes": size,
        "server_median_ms": round(statistics.median(handled) * ms, 1),
        "server_p95_ms": round(percentile(handled, 0.95) * ms, 1),
        "round_trip_median_ms": round(statistics.median(trips) * ms, 1),
        "round_trip_p95_ms": round(percentile(trips, 0.95) * ms, 1),
        "target_ms": target * ms,
        "met": percentile(handled, 0.95) < target,
    }


# ------------------------------------------------------------------------------------------ live updates


class Changes:
    """Every call changes one incident through the store, as a person would through /incident: a new
    one is declared, acknowledged, given a stakeholder update and resolved, and so on."""

    def __init__(self, tocsin: Tocsin) -> None:
        self.db, self.policy = tocsin.db, tocsin.settings.policy
        self.step, self.number = 0, 0

    async def next(self) -> None:
        now = datetime.now(UTC)
        policy = self.policy
        async with self.db.write() as session:
            if self.step % 4 == 0:
                title = f"Live change {self.step // 4}"
                declared = await service.declare(
                    session, policy=policy, title=title, reporter=USER, now=now, priority="P2"
                )
                self.number = declared.incident.number
            else:
                incident = await service.find(
                    session, policy=policy, ref=policy.public_id(self.number), lock=True
                )
                if self.step % 4 == 1:
                    await service.apply(session, incident, Action.ACK, policy=policy, actor=USER, now=now)
                elif self.step % 4 == 2:
                    said = "We have found the cause and are rolling back"
                    await service.post_update(session, incident, said, policy=policy, actor=USER, now=now)
                else:
                    await service.apply(
                        session,
                        incident,
                        Action.RESOLVE,
                        policy=policy,
                        actor=USER,
                        now=now,
                        summary="Rolled back",
                        cause=policy.cause_codes[0],
                        resolution=policy.resolution_codes[0],
                    )
        self.step += 1


async def open_streams(url: str, cookie: str, streams: int) -> asyncio.subprocess.Process:
    """A child process holding `streams` dashboards open, once each has its first event."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--hold",
        str(streams),
        cwd=str(ROOT),
        env={**os.environ, "BENCH_WEB_URL": f"{url}/live/dashboard", "BENCH_WEB_COOKIE": cookie},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    ready = json.loads(await asyncio.wait_for(child.stdout.readline(), 120))
    assert ready["open"] == streams, ready
    return child


async def close_streams(child: asyncio.subprocess.Process) -> list[int]:
    """Each stream's count of events after its first, as the child saw them."""
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    done = json.loads(await asyncio.wait_for(child.stdout.readline(), 30))
    await child.wait()
    return list(done["events"])


async def wait_for_pages(served: Served, pages: int, changes: Changes, limit: float = 30) -> int:
    """Until the server holds `pages` streams: one the child closed goes at the server's next write to
    it, so a change is made now and then. Returns how many it holds."""
    began = time.perf_counter()
    while len(served.tocsin.live.pages) != pages and time.perf_counter() - began < limit:
        await changes.next()
        await asyncio.sleep(CHANGE_EVERY)
    return len(served.tocsin.live.pages)


async def live_window(
    served: Served, changes: Changes, streams: int, seconds: float, cookie: str, *, postgres: bool
) -> dict[str, Any]:
    """One window of `seconds` with `streams` dashboards open; PostgreSQL's processes' CPU too if
    `postgres`."""
    child = await open_streams(served.url, cookie, streams) if streams else None
    held = len(served.tocsin.live.pages)
    await asyncio.sleep(1)
    meter = CpuMeter(os.getpid())
    meter.start()
    cpu, began = time.process_time(), time.perf_counter()
    made = 0
    while time.perf_counter() - began < seconds:
        await changes.next()
        made += 1
        await asyncio.sleep(max(0.0, began + made * CHANGE_EVERY - time.perf_counter()))
    spent, wall = time.process_time() - cpu, time.perf_counter() - began
    postgres_ms = meter.stop(1)["postgres_cpu_ms_per_request"]  # one "request": the window's total
    events = await close_streams(child) if child else []
    return {
        "streams": streams,
        "held_by_server": held,
        "seconds": round(wall, 2),
        "changes": made,
        "server_cpu_ms": round(spent * 1000, 1),
        "postgres_cpu_ms": round(postgres_ms, 1) if postgres else None,
        "events_per_stream_min": min(events, default=0),
        "events_per_stream_max": max(events, default=0),
    }


def per_page(window: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    pages_seconds = window["streams"] * window["seconds"]
    extra = window["server_cpu_ms"] - baseline["server_cpu_ms"] * window["seconds"] / baseline["seconds"]
    postgres = None
    if window["postgres_cpu_ms"] is not None:
        postgres = (
            window["postgres_cpu_ms"] - baseline["postgres_cpu_ms"] * window["seconds"] / baseline["seconds"]
        )
    return {
        **window,
        "cpu_ms_per_page_second": round(extra / pages_seconds, 3),
        "postgres_cpu_ms_per_page_second": None if postgres is None else round(postgres / pages_seconds, 3),
        "target_ms": LIVE_TARGET,
        "met": extra / pages_seconds < LIVE_TARGET,
    }


async def hold(streams: int) -> None:
    """The child: open `streams` event streams, read the first event of each, say so, then count the
    events until stdin closes."""
    url, cookie = os.environ["BENCH_WEB_URL"], os.environ["BENCH_WEB_COOKIE"]
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"Cookie": cookie, "Accept": "text/event-stream"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:
        opened = await asyncio.gather(*(http.get(url) for _ in range(streams)))
        counts = [-1] * streams  # the first event is not counted
        firsts = [asyncio.Event() for _ in range(streams)]

        async def read(k: int, response: aiohttp.ClientResponse) -> None:
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    if event.startswith(b"data:"):
                        counts[k] += 1
                        firsts[k].set()

        readers = [asyncio.create_task(read(k, r)) for k, r in enumerate(opened) if r.status == 200]
        await asyncio.wait_for(asyncio.gather(*(first.wait() for first in firsts)), 60)
        print(json.dumps({"open": len(readers)}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
        for reader in readers:
            reader.cancel()
        for response in opened:
            response.close()
    print(json.dumps({"events": counts}), flush=True)


# ------------------------------------------------------------------------------------------ the run


async def bench(store: str, url: str, args: argparse.Namespace, policy: Policy) -> dict[str, Any]:
    if store == "postgres":
        await reset_postgres(url)
    loaded, shown, channels = await load(url, args.incidents, datetime.now(UTC), policy)
    served = await serve(url, channels)
    try:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar, headers={"Accept": "text/html"}) as http:
            cookie = await sign_in(http, served.url)
            pages = pages_of(policy.public_id(shown))
            timed = [await time_page(served, http, page, args.requests) for page in pages]
        changes = Changes(served.tocsin)
        postgres = store == "postgres"
        baseline = await live_window(served, changes, 0, args.seconds, cookie, postgres=postgres)
        live = []
        for streams in args.streams:
            window = await live_window(served, changes, streams, args.seconds, cookie, postgres=postgres)
            live.append(per_page(window, baseline))
            await wait_for_pages(served, 0, changes)
    finally:
        await served.stop()
    return {
        "store": store,
        "incidents": args.incidents,
        "open": OPEN,
        "load_seconds": round(loaded, 1),
        "pages": timed,
        "live_baseline": baseline,
        "live": live,
    }


def table(results: list[dict[str, Any]]) -> None:
    print("\n| store | page | server median / p95 | round trip median / p95 | target | met |")
    print("|---|---|---|---|---|---|")
    for result in results:
        for p in result["pages"]:
            print(
                f"| {result['store']} | {p['page']} (`{p['path']}`) | {p['server_median_ms']} / {p['server_p95_ms']} ms"
                f" | {p['round_trip_median_ms']} / {p['round_trip_p95_ms']} ms | < {p['target_ms']:.0f} ms"
                f" | {'yes' if p['met'] else 'no'} |"
            )
    print(
        "\n| store | open pages | server CPU in the window (baseline) | CPU ms per page per second | PostgreSQL's | target | met |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        base = result["live_baseline"]
        for w in result["live"]:
            print(
                f"| {result['store']} | {w['streams']} | {w['server_cpu_ms']} ms ({base['server_cpu_ms']} ms)"
                f" | {w['cpu_ms_per_page_second']} | {'-' if w['postgres_cpu_ms_per_page_second'] is None else w['postgres_cpu_ms_per_page_second']}"
                f" | < {w['target_ms']} ms | {'yes' if w['met'] else 'no'} |"
            )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page")
    parser.add_argument("--streams", nargs="+", type=int, default=[50, 200], help="open dashboards")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each live window")
    parser.add_argument("--hold", type=int, help=argparse.SUPPRESS)  # the child holding the streams
    args = parser.parse_args()
    if args.hold is not None:
        await hold(args.hold)
        return
    policy = load_policy(ROOT / "app.yaml")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for store, url in store_urls(args.stores, tmp, "web"):
            result = await bench(store, url, args, policy)
            results.append(result)
            print(
                f"{store:<9} {args.incidents} incidents loaded in {result['load_seconds']} s;"
                " pages: " + ", ".join(f"{p['page']} {p['server_p95_ms']} ms" for p in result["pages"]),
                flush=True,
            )
    write_results("web", results, incidents=args.incidents, requests=args.requests, seconds=args.seconds)
    table(results)


if __name__ == "__main__":
    asyncio.run(main())
