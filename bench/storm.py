"""Storm benchmark: many incidents at once against a fake Slack that enforces Slack's quotas.

    TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/storm.py [--stores sqlite postgres] [--incidents 30] [--p1 3] [--ack command]

Processes: this one plays the people and Slack's request signing; the fake Slack (bench/servers.py
`fake --rate-limits`) answers 429 with Retry-After once a method's or a channel's bucket is empty; `tocsin
serve` runs with bench/storm.yaml, once on SQLite and as two replicas on one PostgreSQL database, the
requests spread over both.

The storm: U0BENCH declares `--incidents` incidents in #general within a few seconds, the P4s first and
`--p1` P1s last (`/incident declare P4 ...`); level 1 pages the fixed channel #paging and U0ONCALL (also by
DM). Then U0ONCALL, for each incident: acknowledges (`/incident INC-n ack` in #general, at once; or with
`--ack button`, the Acknowledge button of the card once the card is in Slack), posts two stakeholder
updates, a note, and resolves it with its codes.

Measured: for each P1, the seconds from its declare command to its first page in #paging and to the first
message in its own channel; the share of Slack's answers that were 429; the drain time (last command
answered to the last Slack call, with the outbox empty); the time Slack's quotas need for the calls a
correct bot must make (`bound`), for each bucket and the largest, and drain / bound; chat.update calls
that changed nothing; lost and doubled messages, and whether every card, announcement and topic ends as
the incident's final state renders; the slowest answer to any command; Web API calls per incident by
method, against the fewest a correct bot needs. Writes bench/results/storm.json (`--name` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from common import health, serve, signed, spawn, stop, store_urls, wait_healthy, write_results  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bot.config import load_policy  # noqa: E402
from handlers.messages import Composer  # noqa: E402
from handlers.render import Renderer  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import Incident  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402
from tests.fakeslack import POST, Rate, RateLimits  # noqa: E402

SECRET = "storm-signing-secret"
CONFIG = ROOT / "bench" / "storm.yaml"
GENERAL, ANNOUNCE, LEADERS, PAGING = "C_GENERAL", "C0123ANNOUNCE", "C0123LEADERS", "C0PAGING"
REPORTER, ONCALL = "U0BENCH", "U0ONCALL"
INCIDENT_CHANNEL = re.compile(r"^inc-(\d+)-")
PUBLIC_ID = re.compile(r"\bINC-(\d+)\b")
CONCURRENT = 4  # commands in flight at once after the declares: a handful of people typing


# ---------------------------------------------------------------------- what people send


def slash(text: str, *, user: str, response_url: str, channel: str = GENERAL) -> bytes:
    """`/incident text` typed by `user` in `channel`, form-encoded as Slack posts it."""
    return urlencode(
        {
            "token": "x",
            "team_id": "T0001",
            "team_domain": "storm",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/incident",
            "text": text,
            "api_app_id": "A1",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{int(time.time() * 1000)}.{random.randrange(10**10)}.storm",
        }
    ).encode()


def click(number: int, *, user: str, channel: str, ts: str, response_url: str) -> bytes:
    """A click on the Acknowledge button of the card `ts` in `channel`, as Slack posts block_actions."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0001"},
        "api_app_id": "A1",
        "team": {"id": "T0001", "domain": "storm"},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "incident"},
        "trigger_id": f"{int(time.time() * 1000)}.{random.randrange(10**10)}.storm",
        "response_url": response_url,
        "message": {"type": "message", "ts": ts, "text": "card"},
        "actions": [
            {
                "action_id": "incident_acknowledge",
                "block_id": "incident_actions",
                "value": str(number),
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


@dataclass
class Answer:
    text: str
    status: int
    sent_at: float  # wall clock
    seconds: float  # until the bot answered

    @property
    def ok(self) -> bool:
        return self.status == 200 and ":warning:" not in self.text and ":no_entry" not in self.text


@dataclass
class People:
    """Sends signed requests, spread over the replicas in turn, and keeps every answer."""

    replicas: list[str]
    fake: dict[str, str]
    session: aiohttp.ClientSession
    answers: list[tuple[str, Answer]] = field(default_factory=list)
    _turn: itertools.cycle = field(init=False)

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(self.replicas)

    async def response_url(self) -> str:
        async with self.session.get(self.fake["stats_url"].replace("/stats", "/response_url")) as response:
            return str((await response.json())["url"])

    async def send(self, what: str, body: bytes) -> Answer:
        url, sent_at, began = next(self._turn), time.time(), time.perf_counter()
        async with self.session.post(f"{url}/slack/events", data=body, headers=signed(SECRET, body)) as r:
            text = await r.text()
            answer = Answer(text, r.status, sent_at, time.perf_counter() - began)
        self.answers.append((what, answer))
        return answer

    async def command(self, text: str, *, user: str) -> Answer:
        return await self.send(
            text.split(" ", 2)[1] if text.startswith("INC-") else text.split()[0],
            slash(text, user=user, response_url=await self.response_url()),
        )


async def dump(fake: dict[str, str]) -> dict[str, Any]:
    url = fake["stats_url"].replace("/stats", "/dump")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json()


# ---------------------------------------------------------------------- the storm


async def declare_all(people: People, priorities: list[str]) -> dict[int, dict[str, Any]]:
    """Declare one incident per priority, in order, each as soon as the last was answered."""
    declared: dict[int, dict[str, Any]] = {}
    for n, priority in enumerate(priorities, 1):
        answer = await people.command(
            f"declare {priority} Storm outage {n}: checkout {priority}", user=REPORTER
        )
        found = PUBLIC_ID.search(answer.text)
        if not answer.ok or found is None:
            raise RuntimeError(f"declare {n} failed: {answer.status} {answer.text[:300]}")
        declared[int(found.group(1))] = {"priority": priority, "declared_at": answer.sent_at}
    return declared


async def card_in_slack(fake: dict[str, str], number: int, limit: float = 600) -> tuple[str, str]:
    """(channel, ts) of the incident's card once Slack has it: a person clicks what they see."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for m in (await dump(fake))["messages"]:
            if _event(m) == ("incident_declared", number) and m["channel"] not in (ANNOUNCE,):
                return m["channel"], m["ts"]
        await asyncio.sleep(1.0)
    raise RuntimeError(f"INC-{number}'s card never reached Slack")


async def respond(people: People, number: int, ack: str, gate: asyncio.Semaphore) -> None:
    """What the on-call person does with one incident: acknowledge, two updates, a note, resolve."""
    ref = f"INC-{number}"
    if ack == "button":
        channel, ts = await card_in_slack(people.fake, number)
        async with gate:
            body = click(
                number, user=ONCALL, channel=channel, ts=ts, response_url=await people.response_url()
            )
            await people.send("ack (button)", body)
    else:
        async with gate:
            await people.command(f"{ref} ack", user=ONCALL)
    for text in (
        f"{ref} update Checkout is failing for some customers; we are on it",
        f"{ref} update A fix is rolling out",
        f"{ref} note Storm bench: the fix is the usual restart",
        f"{ref} resolve Restarted the checkout workers cause=capacity resolution=restart",
    ):
        async with gate:
            await people.command(text, user=ONCALL)


async def drained(replicas: list[str], fake: dict[str, str], quiet: float, limit: float = 900) -> float:
    """Wait until the outbox is empty and the fake Slack has had no call for `quiet` seconds; the wall
    time the outbox was last seen with messages in it."""
    deadline, calls, still = time.monotonic() + limit, -1, time.monotonic()
    last_backlog = time.time()
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            backlog = int((await health(replicas[0])).get("outbox", {}).get("backlog", 1))
            async with session.get(fake["stats_url"]) as response:
                seen = int((await response.json())["calls"])
            if backlog:
                last_backlog = time.time()
            if seen != calls:
                calls, still = seen, time.monotonic()
            elif not backlog and time.monotonic() - still >= quiet:
                return last_backlog
            await asyncio.sleep(0.25)
    raise RuntimeError(f"the storm did not drain within {limit} s")


# ---------------------------------------------------------------------- what a correct bot needs


def fewest_calls(priority: str) -> dict[str, int]:
    """The fewest Web API calls one incident of the storm needs, by method: its channel made, its two
    people (the reporter, the paged U0ONCALL, who then acknowledges) invited in one call, its topic set
    and its card pinned once; every message posted once (see fewest_posts). chat.update: none at
    least, since a card or announcement posted after the incident resolved shows it resolved, and edits
    queued behind one another need only the last; a bot whose card is up before the ack and the resolve
    needs up to four (two for the card, two for the announcement)."""
    return {
        "conversations.create": 1,
        "conversations.invite": 1,
        "conversations.setTopic": 1,
        "pins.add": 1,
        POST: sum(fewest_posts(0, priority).values()),
        "chat.update": 0,
    }


def fewest_posts(number: int, priority: str) -> dict[str, int]:
    """The messages one incident posts, by channel: its own (card, acknowledgement, two updates, page,
    resolution, the reporter's confirmation prompt), the announce channel (announcement and the two
    updates in its thread), #paging, U0ONCALL's DM and, for a P1, leadership."""
    posts = {f"#inc-{number}": 7, "#announce": 3, "#paging": 1, f"DM {ONCALL}": 1}
    if priority == "P1":
        posts["#leadership"] = 1
    return posts


def bound(declared: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """For each bucket of Slack's quotas this storm draws on: the calls a correct bot needs, the burst,
    the rate, and the seconds the quota needs for them, (calls - burst) / rate; and the largest."""
    limits = RateLimits()
    needs: Counter[str] = Counter()
    for number, facts in declared.items():
        for method, calls in fewest_calls(facts["priority"]).items():
            if method != POST:
                needs[method] += calls
        for channel, calls in fewest_posts(number, facts["priority"]).items():
            needs[f"{POST} {channel}"] += calls
            needs[f"{POST} (workspace)"] += calls
    buckets: list[dict[str, Any]] = []
    for bucket, calls in needs.items():
        rate = _rate(bucket, limits)
        seconds = max(0.0, (calls - rate.burst) / rate.per_second)
        buckets.append(
            {
                "bucket": bucket,
                "calls": calls,
                "burst": rate.burst,
                "per_minute": rate.per_minute,
                "seconds": round(seconds, 1),
            }
        )
    buckets.sort(key=lambda b: -b["seconds"])
    return {"buckets": buckets, "largest": buckets[0]}


def _rate(bucket: str, limits: RateLimits) -> Rate:
    if bucket == f"{POST} (workspace)":
        return limits.posts
    if bucket.startswith(POST):
        return limits.per_channel
    return limits.rate(bucket)


# ---------------------------------------------------------------------- what reached Slack


def _event(message: dict[str, Any]) -> tuple[str | None, int | None]:
    """A message's (metadata event type, incident number)."""
    metadata = message.get("metadata") or {}
    found = PUBLIC_ID.search(str((metadata.get("event_payload") or {}).get("incident_id", "")))
    return metadata.get("event_type"), int(found.group(1)) if found else None


class Seen:
    """What the fake Slack recorded, by incident."""

    def __init__(self, slack: dict[str, Any]) -> None:
        self.slack = slack
        self.channel_of: dict[str, int] = {}  # incident channel id -> incident number
        for channel in slack["channels"]:
            found = INCIDENT_CHANNEL.match(channel["name"])
            if found:
                self.channel_of[channel["id"]] = int(found.group(1))
        self.dms = {c["id"]: c["user"] for c in slack["channels"] if c["user"]}
        self.message_of = {(m["channel"], m["ts"]): _event(m)[1] for m in slack["messages"]}

    def own_channel(self, number: int) -> str | None:
        return next((c for c, n in self.channel_of.items() if n == number), None)

    def where(self, message: dict[str, Any]) -> str:
        channel = message["channel"]
        if channel in self.channel_of:
            return "own"
        if channel == ANNOUNCE:
            return "announce thread" if message["thread_ts"] else "announce"
        if channel in self.dms:
            return "dm"
        return {PAGING: "paging", LEADERS: "leadership"}.get(channel, channel)

    def incident_of(self, call: dict[str, Any]) -> int | None:
        """Which incident a call was about: by the channel it made or named, its message or metadata."""
        args = call["args"]
        if call["method"] == "conversations.create":
            found = INCIDENT_CHANNEL.match(args.get("name", ""))
            return int(found.group(1)) if found else None
        channel = args.get("channel")
        if channel in self.channel_of:
            return self.channel_of[channel]
        if call.get("metadata"):
            return _event({"metadata": call["metadata"]})[1]
        return self.message_of.get((channel, args.get("ts")))


def expected_messages(priority: str) -> Counter[tuple[str, str]]:
    """(where, event type) of every message one incident should leave in Slack, and how many."""
    expected = Counter(
        {
            ("own", "incident_declared"): 1,
            ("announce", "incident_declared"): 1,
            ("own", "incident_acknowledged"): 1,
            ("own", "incident_status_update"): 2,
            ("announce thread", "incident_status_update"): 2,
            ("own", "escalation_page"): 1,
            ("paging", "escalation_page"): 1,
            ("dm", "escalation_page_dm"): 1,
            ("own", "incident_resolved"): 1,
            ("own", "closure_confirmation_requested"): 1,
        }
    )
    if priority == "P1":
        expected[("leadership", "incident_leadership_notice")] = 1
    return expected


def lost_and_doubled(seen: Seen, declared: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Each incident's messages against what it should have left: lost, doubled, unexpected."""
    found: dict[int, Counter[tuple[str, str]]] = defaultdict(Counter)
    for message in seen.slack["messages"]:
        event, number = _event(message)
        if number is not None and event:
            found[number][(seen.where(message), event)] += 1
    lost: Counter[str] = Counter()
    doubled: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    for number, facts in declared.items():
        expected = expected_messages(facts["priority"])
        for key in expected.keys() | found[number].keys():
            have, want = found[number][key], expected[key]
            label = f"{key[1]} in {key[0]}"
            if not want:
                unexpected[label] += have
            elif have < want:
                lost[label] += want - have
            elif have > want:
                doubled[label] += have - want
    return {
        "lost": sum(lost.values()),
        "doubled": sum(doubled.values()),
        "lost_by_kind": dict(lost),
        "doubled_by_kind": dict(doubled),
        "unexpected": dict(unexpected),
    }


async def ends_correct(url: str, seen: Seen) -> dict[str, Any]:
    """Whether each incident's card, announcement and channel topic end as its final state renders
    (bench/storm.yaml's templates, from the incident's row as it is now)."""
    policy = load_policy(CONFIG)
    composer = Composer(policy=policy, renderer=Renderer(timezone=policy.timezone))
    db = Database(url)
    try:
        async with db.read() as session:
            incidents = list((await session.scalars(select(Incident))).all())
    finally:
        await db.dispose()
    wrong: list[str] = []
    for incident in incidents:
        shown = {"card": composer.card(incident), "announcement": composer.announcement(incident)}
        for what, message in shown.items():
            ts = incident.card_ts if what == "card" else incident.announcement_ts
            channel = incident.channel_id if what == "card" else ANNOUNCE
            now = next((m for m in seen.slack["messages"] if (m["channel"], m["ts"]) == (channel, ts)), None)
            if now is None or (now["text"], now["blocks"] or []) != (message.text, message.blocks):
                wrong.append(f"INC-{incident.number} {what}")
            elif (now["metadata"] or {}).get("event_payload", {}).get("state") != incident.state.value:
                wrong.append(f"INC-{incident.number} {what} metadata")
        topic = next((c["topic"] for c in seen.slack["channels"] if c["id"] == incident.channel_id), None)
        if topic != composer.topic(incident):
            wrong.append(f"INC-{incident.number} topic")
    states = Counter(incident.state.value for incident in incidents)
    return {"final_states": dict(states), "wrong": wrong, "all_correct": not wrong}


def first_messages(seen: Seen, declared: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """For each P1: seconds from its declare command to its first page in #paging, to the first message
    in its own channel, and to its page DM."""
    rows = []
    for number, facts in declared.items():
        if facts["priority"] != "P1":
            continue
        own, firsts = seen.own_channel(number), dict[str, float]()
        for message in seen.slack["messages"]:
            event, about = _event(message)
            if about != number:
                continue
            kinds = [
                kind
                for kind, fits in (
                    ("page_in_paging_channel_s", message["channel"] == PAGING and event == "escalation_page"),
                    ("first_in_own_channel_s", message["channel"] == own),
                    ("page_dm_s", event == "escalation_page_dm"),
                )
                if fits
            ]
            for kind in kinds:
                firsts[kind] = min(firsts.get(kind, message["posted_at"]), message["posted_at"])
        rows.append(
            {
                "incident": f"INC-{number}",
                **{
                    kind: round(firsts[kind] - facts["declared_at"], 2) if kind in firsts else None
                    for kind in ("page_in_paging_channel_s", "first_in_own_channel_s", "page_dm_s")
                },
            }
        )
    return rows


def calls_per_incident(seen: Seen, declared: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Web API calls per incident by method (all, and how Slack answered them: ok, an error, 429), for
    the P4s and the P1s, against the fewest a correct bot needs; and calls of no incident."""
    by_priority: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    unattributed: Counter[str] = Counter()
    for call in seen.slack["calls"]:
        number = seen.incident_of(call)
        if number not in declared:
            unattributed[call["method"]] += 1
            continue
        counts = by_priority[declared[number]["priority"]][call["method"]]
        counts["calls"] += 1
        counts["429"] += call["status"] == 429
        counts["ok"] += call["ok"]
    result: dict[str, Any] = {}
    for priority, methods in sorted(by_priority.items()):
        n = sum(1 for facts in declared.values() if facts["priority"] == priority)
        fewest = fewest_calls(priority)
        result[priority] = {
            method: {
                "calls": round(counts["calls"] / n, 2),
                "ok": round(counts["ok"] / n, 2),
                "error": round((counts["calls"] - counts["ok"] - counts["429"]) / n, 2),
                "429": round(counts["429"] / n, 2),
                "fewest": fewest.get(method, 0),
            }
            for method, counts in sorted(methods.items())
        }
    result["unattributed"] = dict(unattributed)
    return result


def answered(slack: dict[str, Any]) -> dict[str, Any]:
    statuses = Counter(call["status"] for call in slack["calls"])
    total = sum(statuses.values())
    by_method: dict[str, Counter[str]] = defaultdict(Counter)
    for call in slack["calls"]:
        by_method[call["method"]]["429" if call["status"] == 429 else "ok" if call["ok"] else "error"] += 1
    return {
        "answers": total,
        "ratelimited": statuses[429],
        "ratelimited_share": round(statuses[429] / total, 3) if total else 0.0,
        "successful": sum(1 for call in slack["calls"] if call["ok"]),
        "by_method": {method: dict(counts) for method, counts in sorted(by_method.items())},
    }


def own_calls(seen: Seen, declared: dict[int, dict[str, Any]], number: int) -> list[str]:
    """The incident's successful calls, each with its seconds since the declare: what it waited for."""
    began = declared[number]["declared_at"]
    return [
        f"{call['method']} {call['args'].get('channel', call['args'].get('name', ''))} +{call['at'] - began:.1f}s"
        for call in seen.slack["calls"]
        if call["ok"] and seen.incident_of(call) == number
    ]


# ---------------------------------------------------------------------- one run


async def start_replicas(
    url: str, api_url: str, count: int
) -> tuple[list[asyncio.subprocess.Process], list[str]]:
    """`count` `tocsin serve` processes on one database, each started once the last is healthy (the
    first upgrades the schema)."""
    processes, bases = [], []
    port = 20000 + random.randint(0, 9000)
    for n in range(count):
        processes.append(
            await serve(
                port=port + n, database_url=url, api_url=api_url, secret=SECRET, TOCSIN_CONFIG=str(CONFIG)
            )
        )
        bases.append(f"http://127.0.0.1:{port + n}")
        await wait_healthy(bases[-1])
    return processes, bases


async def storm(people: People, args: argparse.Namespace) -> dict[str, Any]:
    """Declare, then respond to every incident; when each phase ended (wall clock)."""
    began = time.time()
    priorities = ["P4"] * (args.incidents - args.p1) + ["P1"] * args.p1
    declared = await declare_all(people, priorities)
    declares_done = time.time()
    gate = asyncio.Semaphore(CONCURRENT)
    await asyncio.gather(*(respond(people, number, args.ack, gate) for number in declared))
    last = max(answer.sent_at + answer.seconds for _, answer in people.answers)
    return {"declared": declared, "began": began, "declares_done": declares_done, "last_command": last}


def summary(
    store: str, replicas: int, run: dict[str, Any], people: People, seen: Seen, last_backlog: float
) -> dict[str, Any]:
    declared, slack = run["declared"], seen.slack
    last_call = max(call["at"] for call in slack["calls"])
    drain = max(last_call, last_backlog) - run["last_command"]
    quota = bound(declared)
    slowest_what, slowest = max(people.answers, key=lambda a: a[1].seconds)
    p1s = first_messages(seen, declared)
    for row in p1s:
        row["own_calls"] = own_calls(seen, declared, int(row["incident"].removeprefix("INC-")))[:12]
    return {
        "store": store,
        "replicas": replicas,
        "incidents": len(declared),
        "p1": sum(1 for facts in declared.values() if facts["priority"] == "P1"),
        "declares_seconds": round(run["declares_done"] - run["began"], 2),
        "commands_seconds": round(run["last_command"] - run["began"], 2),
        "commands": len(people.answers),
        "p1s": p1s,
        "slack": answered(slack),
        "drain_seconds": round(drain, 1),
        "outbox_empty_after_last_command_s": round(last_backlog - run["last_command"], 1),
        "bound": quota,
        "drain_over_bound": round(drain / quota["largest"]["seconds"], 2)
        if quota["largest"]["seconds"]
        else None,
        "noop_updates": len(slack["noop_updates"]),
        "noop_updates_by_event": dict(Counter(e["event_type"] for e in slack["noop_updates"])),
        "metadata_only_updates": len(slack["metadata_only_updates"]),
        "messages": lost_and_doubled(seen, declared),
        "slowest_answer_s": round(slowest.seconds, 3),
        "slowest_answer_to": slowest_what,
        "failed_commands": [f"{what}: {a.status} {a.text[:160]}" for what, a in people.answers if not a.ok],
        "calls_per_incident": calls_per_incident(seen, declared),
        "slack_problems": slack["problems"][:10],
    }


async def bench_store(store: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    if store == "postgres":
        await reset_postgres(url)
    replicas = args.replicas or (2 if store == "postgres" else 1)
    fake_process, fake = await spawn("bench/servers.py", "fake", "--rate-limits")
    processes: list[asyncio.subprocess.Process] = []
    try:
        processes, bases = await start_replicas(url, fake["api_url"], replicas)
        async with aiohttp.ClientSession() as session:
            people = People(bases, fake, session)
            run = await storm(people, args)
        last_backlog = await drained(bases, fake, quiet=args.quiet)
        failed = (await health(bases[0])).get("outbox", {}).get("failed")
        seen = Seen(await dump(fake))
        if args.dump:
            Path(args.dump).with_suffix(f".{store}.json").write_text(json.dumps(seen.slack, indent=1))
        result = summary(store, replicas, run, people, seen, last_backlog)
        result["outbox_failed"] = failed
        result["ends"] = await ends_correct(url, seen)
    finally:
        await stop(*processes, fake_process)
    show(result)
    return result


def show(r: dict[str, Any]) -> None:
    print(
        f"{r['store']} ({r['replicas']} replica(s)): {r['incidents']} incidents declared in "
        f"{r['declares_seconds']} s, {r['commands']} commands in {r['commands_seconds']} s"
    )
    for p1 in r["p1s"]:
        print(
            f"  {p1['incident']}: page in #paging after {p1['page_in_paging_channel_s']} s, first message "
            f"in its channel after {p1['first_in_own_channel_s']} s, page DM after {p1['page_dm_s']} s"
        )
    s, b = r["slack"], r["bound"]["largest"]
    print(
        f"  Slack answered {s['answers']} calls, {s['ratelimited']} of them 429 ({s['ratelimited_share']:.1%})"
    )
    print(
        f"  drained {r['drain_seconds']} s after the last command; quota bound {b['seconds']} s "
        f"({b['bucket']}): ratio {r['drain_over_bound']}"
    )
    m, e = r["messages"], r["ends"]
    print(
        f"  no-op chat.update {r['noop_updates']} (metadata only {r['metadata_only_updates']}); lost {m['lost']}, "
        f"doubled {m['doubled']}, unexpected {m['unexpected']}; all cards, announcements and topics "
        f"correct: {e['all_correct']} {e['wrong'][:5]}"
    )
    print(
        f"  slowest answer {r['slowest_answer_s']} s ({r['slowest_answer_to']}); failed commands: "
        f"{len(r['failed_commands'])}; outbox failed rows: {r['outbox_failed']}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--incidents", type=int, default=30)
    parser.add_argument("--p1", type=int, default=3, help="how many of the incidents, declared last, are P1s")
    parser.add_argument("--ack", choices=("command", "button"), default="command")
    parser.add_argument("--replicas", type=int, default=0, help="default: 1 on SQLite, 2 on PostgreSQL")
    parser.add_argument(
        "--quiet", type=float, default=5.0, help="seconds without a Slack call that end a run"
    )
    parser.add_argument("--name", default="storm", help="bench/results/<name>.json")
    parser.add_argument("--dump", help="also write what the fake Slack recorded to DUMP.<store>.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for store, url in store_urls(args.stores, tmp, "storm"):
            results.append(await bench_store(store, url, args))
    write_results(args.name, results, incidents=args.incidents, p1=args.p1, ack=args.ack)


if __name__ == "__main__":
    asyncio.run(main())
