"""The web view in a real headless browser (Debian's chromium, driven by Playwright): signing in through the
fake Slack's authorize page, the dashboard's live SLA clocks and the breach the server pushes, the list's
filters, an incident's timeline and review, the charts, the status page without a session, no JavaScript
errors on any page, and (TOCSIN_SCREENSHOTS=1) the screenshots in docs/screenshots/.

The bot serves on a port chosen before it starts, so that TOCSIN_PUBLIC_URL is the address the browser
uses and Sign in with Slack's redirects come back to it."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, RunningBot
from tests.fakeslack import FakeSlack
from tests.helpers import declare, drained
from tests.processes import free_port
from tests.test_web_auth import web_env

CHROMIUM = Path("/usr/bin/chromium")
WAIT = 10_000  # ms: the longest any one expectation or action waits
if not CHROMIUM.exists():
    pytest.skip(f"the browser tests need Debian's chromium at {CHROMIUM}", allow_module_level=True)
try:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the test extra installs it
    pytest.skip("the browser tests need playwright (pip install -e '.[test]')", allow_module_level=True)

pytestmark = pytest.mark.slow
expect.set_options(timeout=WAIT)
SCREENSHOTS = ROOT / "docs" / "screenshots"
# Keeps every part the server pushes to the dashboard (window.__pushed), so that a test can tell the
# server's update from the clocks the page counts down by itself.
RECORD_EVENTS = """
(() => {
  const Original = window.EventSource;
  if (!Original) { return; }
  window.__pushed = [];
  window.EventSource = function (url, options) {
    const source = new Original(url, options);
    source.addEventListener("message", (event) => window.__pushed.push(event.data));
    return source;
  };
  window.EventSource.prototype = Original.prototype;
})();
"""


@pytest.fixture
def p1_response() -> str | None:
    """P1's response SLA, when a test parametrizes it shorter than app.yaml's."""
    return None


@pytest.fixture
def config(config: dict[str, Any], p1_response: str | None) -> dict[str, Any]:
    config["scheduler"]["tick"] = "1s"  # the real sweeper, so a breach is recorded and pushed within seconds
    config["status_page"] = {"enabled": True, "public": True}
    if p1_response:
        config["priorities"]["P1"]["response"] = p1_response
    return config


@pytest.fixture
async def web_bot(start_bot: Callable[..., Any], fake: FakeSlack) -> RunningBot:
    """The real bot on a port known before it starts: its public URL is its own address."""
    fake.add_user("U0ALICE", "alice")
    fake.sign_in_as(user="U0ALICE", name="Alice")
    port = free_port()
    running: RunningBot = await start_bot(port=port, **web_env(fake, f"http://127.0.0.1:{port}"))
    return running


@dataclass
class Errors:
    """What the pages logged as errors: console.error messages and uncaught exceptions."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            source = message.location.get("url", "")
            # Chromium asks for /favicon.ico by itself and logs its 404: no page's doing, so not counted.
            if message.type == "error" and not source.endswith("/favicon.ico"):
                self.seen.append(f"{page.url}: console: {message.text} ({source})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.seen.append(f"{page.url}: {error}"))
        page.on(
            "response",
            lambda response: (
                self.seen.append(f"{page.url}: {response.status} for {response.url}")
                if response.status >= 400
                else None
            ),
        )


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def errors() -> Errors:
    return Errors()


@pytest.fixture
async def context(chromium: Browser, errors: Errors) -> AsyncIterator[BrowserContext]:
    made = await chromium.new_context(viewport={"width": 1280, "height": 900})
    made.set_default_timeout(WAIT)
    made.on("page", errors.watch)
    await made.add_init_script(RECORD_EVENTS)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def sign_in(page: Page, bot: RunningBot, path: str = "/") -> None:
    """Open `path`, be sent through the fake Slack's authorize page, and come back to it signed in."""
    await page.goto(bot.url + path)
    await expect(page.locator("header .who")).to_have_text("Signed in as Alice")
    assert page.url == bot.url + path


async def resolved(bot: RunningBot, text: str) -> str:
    incident = await declare(bot, text)
    await bot.slack.command(f"{incident.id} ack")
    await bot.slack.command(
        f"{incident.id} resolve Rolled back the deploy cause=application-error resolution=rollback"
    )
    await drained(bot)
    return incident.id


def row(page: Page, ref: str) -> Any:
    return page.locator(f'tr[data-incident="{ref}"]')


async def test_signing_in_goes_through_slack_and_back_to_the_page_asked_for(web_bot, page) -> None:
    hops: list[str] = []
    page.on("request", lambda request: hops.append(request.url) if request.is_navigation_request() else None)
    await sign_in(page, web_bot, "/incidents")
    await expect(page.get_by_role("heading", name="Incidents", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    paths = [hop.split("?")[0] for hop in hops]
    assert paths == [
        f"{web_bot.url}/incidents",
        f"{web_bot.url}/login",
        web_bot.fake.authorize_url,
        f"{web_bot.url}/auth/callback",
        f"{web_bot.url}/incidents",
    ], hops
    assert web_bot.fake.authorizations[0]["redirect_uri"] == f"{web_bot.url}/auth/callback"


@pytest.mark.parametrize("p1_response", ["5s"])
async def test_the_dashboard_shows_a_breach_within_seconds_without_a_reload(web_bot, page) -> None:
    await sign_in(page, web_bot, "/")
    await expect(page.get_by_text("No open incidents.")).to_be_visible()
    await page.evaluate("window.__kept = true")
    incident = await declare(web_bot, "P1 Checkout is down")
    clock = row(page, incident.id).locator('[data-clock="response"]')
    await expect(clock).to_be_visible()  # pushed by the server: the page was not reloaded
    left = clock.locator(".left")
    shown = await left.inner_text()
    assert re.fullmatch(r"\d+s( left)?", shown), shown
    await expect(left).not_to_have_text(shown)  # the countdown moves on its own, second by second
    await expect(clock).to_have_attribute("data-state", "breached", timeout=WAIT)
    await expect(clock.locator(".state")).to_have_text("breached")
    await expect(clock.locator(".left")).to_have_text(re.compile(r"\d+s over"))
    # ... and the server says so too once the sweeper recorded it, pushed without a reload
    await page.wait_for_function(
        """ref => (window.__pushed || []).some(part => {
              const here = document.createElement("div");
              here.innerHTML = part;
              const clock = here.querySelector(`tr[data-incident="${ref}"] [data-clock="response"]`);
              return clock && clock.getAttribute("data-state") === "breached";
           })""",
        arg=incident.id,
        timeout=WAIT,
    )
    assert await page.evaluate("window.__kept") is True  # the same document all along: no reload


async def test_the_list_filters_by_priority_and_links_its_csv(web_bot, page) -> None:
    p1 = await declare(web_bot, "P1 Payments down")
    p3 = await declare(web_bot, "P3 Search is slow")
    await sign_in(page, web_bot, "/incidents")
    await expect(row(page, p1.id)).to_be_visible()
    await expect(row(page, p3.id)).to_be_visible()
    await page.get_by_label("Priority").select_option("P3")
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(r"[?&]priority=P3(&|$)"))
    await expect(page.locator("#incidents tbody tr")).to_have_count(1)
    await expect(row(page, p3.id)).to_contain_text("Search is slow")
    await expect(row(page, p1.id)).to_have_count(0)
    await expect(page.locator("#total")).to_have_text("1")
    csv_link = page.get_by_role("link", name="CSV")
    await expect(csv_link).to_have_attribute("href", re.compile(r"^/incidents\.csv\?.*priority=P3"))
    exported = await page.request.get(web_bot.url + str(await csv_link.get_attribute("href")))
    assert exported.ok
    lines = (await exported.text()).splitlines()
    assert lines[0].startswith("id,title,priority,state") and [line.split(",")[0] for line in lines[1:]] == [
        p3.id
    ]


async def test_an_incident_page_shows_its_timeline_and_review_draft(web_bot, page) -> None:
    ref = await resolved(web_bot, "P2 Checkout errors after the deploy")
    await sign_in(page, web_bot, f"/incidents/{ref}")
    await expect(page.locator("main > h1")).to_contain_text(f"{ref} · Checkout errors after the deploy")
    timeline = page.locator("#timeline li")
    assert await timeline.count() >= 3  # declared, acknowledged, resolved
    await expect(page.locator("#timeline")).to_contain_text("Rolled back the deploy")
    await expect(page.get_by_role("heading", name="Post-incident review draft")).to_be_visible()
    review = page.locator("#review")
    await expect(review).to_be_visible()
    await expect(review.locator("h1").first).to_be_visible()  # the draft's Markdown rendered, not shown raw
    await expect(review).not_to_contain_text("# ")


async def test_the_charts_render(web_bot, page) -> None:
    await resolved(web_bot, "P2 Checkout errors")
    await sign_in(page, web_bot, "/")
    for path, count in (("/", 3), ("/reports", 7)):
        await page.goto(web_bot.url + path)
        charts = page.locator("svg.chart")
        await expect(charts).to_have_count(count)
        for chart in await charts.all():
            await chart.scroll_into_view_if_needed()
            await expect(chart).to_be_visible()
            box = await chart.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 50, (path, box)


async def test_the_status_page_shows_only_what_stakeholders_may_see(web_bot, chromium) -> None:
    shown = await declare(web_bot, "P1 Payments are failing")
    hidden = await declare(web_bot, "P2 Payroll export stuck")
    await web_bot.slack.command(f"{hidden.id} ack")
    await web_bot.slack.command(f"{hidden.id} statuspage hide")
    await web_bot.slack.command(f"{shown.id} update We are failing over <@U0ALICE|alice> to the standby")
    await drained(web_bot)
    stranger = await chromium.new_context()  # nobody signed in
    try:
        page = await stranger.new_page()
        await page.goto(web_bot.url + "/status")
        assert page.url == web_bot.url + "/status"  # public: no sign-in
        item = page.locator(f'[data-incident="{shown.id}"]')
        await expect(item.get_by_role("heading")).to_have_text("P1 Payments are failing")
        await expect(item.locator(".update")).to_contain_text("We are failing over someone to the standby")
        await expect(page.get_by_text("Payroll")).to_have_count(0)
        await expect(page.locator(f'[data-incident="{hidden.id}"]')).to_have_count(0)
        await expect(page.locator("#timeline")).to_have_count(0)
        await expect(page.get_by_text("Signed in as")).to_have_count(0)
        seen = await page.locator("body").inner_text()
        html = await page.content()
        for secret in (shown.channel.id, "U0ALICE", "U_ALICE", "alice", "Alice", "Slack channel"):
            assert secret not in seen and secret not in html, secret
    finally:
        await stranger.close()


async def test_no_page_logs_a_javascript_error(web_bot, page, errors) -> None:
    ref = await resolved(web_bot, "P3 Disk full on db-1")
    await declare(web_bot, "P2 Search is slow")
    await sign_in(page, web_bot, "/")
    for path in ("/", "/incidents", f"/incidents/{ref}", "/reports", "/kb", f"/kb/{ref}", "/status"):
        await page.goto(web_bot.url + path)
        await expect(page.locator("main > h1")).to_be_visible()
        if path == "/":  # the live part came from the server and the clocks ticked at least once
            await expect(page.locator('#live [data-clock="response"]').first).to_contain_text("left")
    assert errors.seen == []


@pytest.mark.skipif(
    os.environ.get("TOCSIN_SCREENSHOTS") != "1",
    reason="screenshots for docs/screenshots/ are taken only with TOCSIN_SCREENSHOTS=1",
)
async def test_screenshots_of_the_main_pages(web_bot, page) -> None:
    bot, alice = web_bot, "U0ALICE"
    bot.fake.add_user("U0BOB", "bob")
    shown = await declare(bot, "P2 Checkout errors after the 14:05 deploy", user=alice)
    ref = shown.id
    await bot.slack.command(f"{ref} ack", user=alice)
    await bot.slack.command(f"{ref} note Error rate 12% on /pay since 14:05", user=alice)
    await bot.slack.command(f"{ref} update Card payments fail for some customers; rolling back", user=alice)
    await bot.slack.command(f"{ref} action <@U0BOB|bob> Add a canary stage for checkout", user=alice)
    await bot.slack.command(
        f"{ref} resolve Rolled back the 14:05 deploy cause=application-error resolution=rollback", user=alice
    )
    await resolved(bot, "P3 Disk full on db-1")
    for text in (
        "P1 Payments are failing for card customers",
        "P2 Search is slow",
        "P4 Typo on the help page",
    ):
        await declare(bot, text, user=alice)
    opened = await declare(bot, "P3 Nightly export late", user=alice)
    await bot.slack.command(f"{opened.id} ack", user="U0BOB")
    await bot.slack.command(
        f"{opened.id} update The export is running again; catching up by 10:00", user="U0BOB"
    )
    await drained(bot)
    await sign_in(page, web_bot, "/")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in (
        ("dashboard", "/"),
        ("incidents", "/incidents"),
        ("incident", f"/incidents/{ref}"),
        ("reports", "/reports"),
        ("kb", "/kb"),
        ("status", "/status"),
    ):
        await page.goto(web_bot.url + path)
        await expect(page.locator("main > h1")).to_be_visible()
        if path == "/":
            await expect(page.locator("#live tr[data-incident]")).to_have_count(4)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000
