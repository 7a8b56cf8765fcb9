"""Helper processes for bench/load.py: `fake` (the test suite's fake Slack, plus /stats) and `bare`
(the ceiling: a bare slack-bolt AsyncApp on aiohttp whose only handler acks /incident; it also acks the
Acknowledge button, which bench/load.py measures once per N for comparison, not as the ceiling).
Each prints one JSON line with its URLs, then serves until killed."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request  # noqa: E402
from slack_bolt.async_app import AsyncApp  # noqa: E402
from slack_bolt.authorization import AuthorizeResult  # noqa: E402

from tests.fakeslack import FakeSlack  # noqa: E402

BENCH_CHANNEL = "C0BENCH"


async def serve(app: web.Application) -> int:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return int(runner.addresses[0][1])


async def fake() -> None:
    slack = FakeSlack()
    await slack.start()
    for channel, name in (
        ("C0123ANNOUNCE", "incidents"),
        ("C0123LEADERS", "leadership"),
        (BENCH_CHANNEL, "bench"),
        ("C_GENERAL", "general"),
    ):
        slack.add_channel(channel, name)

    async def stats(request: web.Request) -> web.Response:
        events = Counter(m.event_type for m in slack.messages)
        return web.json_response(
            {"events": events, "calls": len(slack.calls), "problems": slack.problems[:5]}
        )

    app = web.Application()
    app.router.add_get("/stats", stats)
    port = await serve(app)
    print(json.dumps({"api_url": slack.api_url, "stats_url": f"http://127.0.0.1:{port}/stats"}), flush=True)
    await asyncio.Event().wait()


async def bare(secret: str) -> None:
    async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token="xoxb-bench")

    bolt = AsyncApp(signing_secret=secret, authorize=authorize, process_before_response=True)

    @bolt.command("/incident")
    async def on_command_incident(ack) -> None:  # type: ignore[no-untyped-def]
        await ack()

    @bolt.action("incident_acknowledge")  # the click's own floor: Bolt parsing a button's payload
    async def on_action_acknowledge(ack) -> None:  # type: ignore[no-untyped-def]
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    port = await serve(app)
    print(json.dumps({"url": f"http://127.0.0.1:{port}/slack/events"}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(fake() if sys.argv[1] == "fake" else bare(sys.argv[2]))
