"""Fixtures: a real database (SQLite; PostgreSQL when TEST_DATABASE_URL is set), the fake Slack, and the
real bot served over HTTP on 127.0.0.1, driven by Slack-signed requests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml
from aiohttp import web
from sqlalchemy.engine import make_url

from bot.app import Tocsin
from bot.config import load_settings
from store.db import Database
from tests.fakeslack import FakeSlack
from tests.signed import SlackRequests

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-signing-secret"
ANNOUNCE, LEADERS, GENERAL = "C0123ANNOUNCE", "C0123LEADERS", "C_GENERAL"
ADMIN = "U0123ADMIN"


def shipped_config() -> dict[str, Any]:
    """app.yaml as shipped, without its example on-call schedule: a schedule hands off every few days
    of a test's clock, posting and messaging people the other tests do not expect. The tests of
    schedules add their own (tests/test_oncall.py)."""
    config = yaml.safe_load((ROOT / "app.yaml").read_text())
    config.pop("schedules", None)
    for level in config["escalation"]["levels"]:
        level["notify"] = [target for target in level["notify"] if not target.startswith("schedule:")]
    return config


async def postgres_connection(url: Any) -> asyncpg.Connection:
    """A plain asyncpg connection to the database at `url` (a SQLAlchemy URL), outside the bot's pool."""
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


async def reset_postgres(url: str) -> None:
    """An empty public schema, so each test upgrades a fresh database."""
    connection = await postgres_connection(url)
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'tocsin.db'}"
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip(
            "PostgreSQL tests need TEST_DATABASE_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    await reset_postgres(url)
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each store, for tests of the store itself."""
    database = Database(database_url)
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
def config() -> dict[str, Any]:
    """app.yaml as shipped; a test may change it before the bot starts."""
    return shipped_config()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client keeping no cookies of its own (the web view's tests keep them by hand)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """The fake Slack with the shipped app.yaml's channels. A test fails at teardown if the bot made a
    call Slack would not accept (`fake.problems`); a test that provokes one asserts and clears it."""
    slack = FakeSlack()
    await slack.start()
    slack.add_channel(ANNOUNCE, "incidents")
    slack.add_channel(LEADERS, "leadership")
    slack.add_channel(GENERAL, "general")
    yield slack
    await slack.stop()
    if slack.problems:
        pytest.fail(
            "the fake Slack recorded problems (calls Slack refuses, or mistakes it lets pass):\n"
            + "\n".join(slack.problems),
            pytrace=False,
        )


class Clock:
    """Real time plus an offset tests can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class RunningBot:
    tocsin: Tocsin
    url: str
    slack: SlackRequests
    fake: FakeSlack
    clock: Clock


@pytest.fixture
async def start_bot(
    tmp_path: Path, database_url: str, fake: FakeSlack, config: dict[str, Any]
) -> AsyncIterator[Callable[..., Any]]:
    """Start the real bot on a random port (call it again after changing `config`)."""
    runners: list[web.AppRunner] = []
    clients: list[SlackRequests] = []

    async def start(*, port: int = 0, **env: str) -> RunningBot:
        """`port`: 0 for any free one; a given one when the bot must know its address before it starts
        (the web view's TOCSIN_PUBLIC_URL)."""
        path = tmp_path / f"app-{len(runners)}.yaml"
        path.write_text(yaml.safe_dump(config))
        settings = load_settings(
            {
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": fake.api_url,
                "DATABASE_URL": database_url,
                "TOCSIN_CONFIG": str(path),
                # The fake Slack enforces no quotas unless a test asks it to: pace as if Slack's were a
                # hundred times larger, so that tests of other things do not wait on them.
                "TOCSIN_SLACK_QUOTA_SCALE": "100",
                **env,
            }
        )
        clock = Clock()
        tocsin = Tocsin(settings, clock=clock)
        runner = web.AppRunner(tocsin.web_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}"
        slack = SlackRequests(f"{url}/slack/events", SECRET, fake)
        clients.append(slack)
        return RunningBot(tocsin=tocsin, url=url, slack=slack, fake=fake, clock=clock)

    yield start
    for client in clients:
        await client.close()
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def bot(start_bot: Callable[..., Any]) -> AsyncIterator[RunningBot]:
    running = await start_bot()
    yield running
