"""The web view's pages over HTTP, signed in through the fake Slack's Sign in with Slack: what each page
shows of incidents declared through Slack, escaped; the list's filters and CSV; an incident's timeline
and review; reports and their downloads; the knowledge base; the status page, and only what it may show."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningBot
from tests.fakeslack import FakeSlack
from tests.helpers import declare, drained
from tests.test_web_auth import Browser, browser_for, sign_in, web_env

EVIL = "<script>alert(1)</script> R&D <b>down</b>"


@pytest.fixture
def config(config):
    config["scheduler"]["tick"] = "1h"  # the tests sweep by hand
    config["status_page"] = {"enabled": True, "public": True}
    return config


@pytest.fixture
async def web_bot(start_bot: Callable[..., Any], fake: FakeSlack) -> RunningBot:
    fake.add_user("U0ALICE", "alice")
    fake.sign_in_as(user="U0ALICE", name="Alice")
    running: RunningBot = await start_bot(**web_env(fake))
    return running


async def signed_in(bot: RunningBot, http: aiohttp.ClientSession) -> Browser:
    browser = browser_for(bot, http)
    await sign_in(browser, "/")
    return browser


async def resolved(bot: RunningBot, text: str) -> str:
    incident = await declare(bot, text)
    await bot.slack.command(f"{incident.id} ack", user="U0ALICE")
    await bot.slack.command(
        f"{incident.id} resolve Rolled back the deploy cause=application-error resolution=rollback",
        user="U0ALICE",
    )
    await drained(bot)
    return incident.id


async def test_the_dashboard_shows_open_incidents_with_their_sla_escaped(web_bot, http) -> None:
    incident = await declare(web_bot, f"P1 {EVIL}")
    browser = await signed_in(web_bot, http)
    page = await browser.get("/")
    assert page.status == 200
    assert f'data-incident="{incident.id}"' in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; R&amp;D &lt;b&gt;down&lt;/b&gt;" in page.text
    assert "<script>alert" not in page.text and "<b>down" not in page.text
    assert 'data-clock="response"' in page.text and 'data-state="ok"' in page.text
    assert page.text.count("<svg") == 3  # MTTA and MTTR, SLA compliance, volume
    async with http.get(web_bot.url + "/live/dashboard", headers={"Cookie": _cookies(browser)}) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = await stream.content.readuntil(b"\n\n")
    assert first.startswith(b"data: ") and incident.id.encode() in first


def _cookies(browser: Browser) -> str:
    return "; ".join(f"{k}={v}" for k, v in browser.cookies.items())


async def test_the_list_filters_and_exports_csv(web_bot, http) -> None:
    p1 = await declare(web_bot, "P1 Payments down")
    p3 = await declare(web_bot, "P3 Search is slow")
    browser = await signed_in(web_bot, http)
    everything = await browser.get("/incidents")
    assert p1.id in everything.text and p3.id in everything.text
    only_p1 = await browser.get("/incidents?priority=P1")
    assert p1.id in only_p1.text and p3.id not in only_p1.text
    words = await browser.get("/incidents?q=search")
    assert p3.id in words.text and p1.id not in words.text
    exported = await browser.get("/incidents.csv?priority=P3")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:4] == ["id", "title", "priority", "state"]
    assert [row[0] for row in rows[1:]] == [p3.id]


async def test_an_incident_page_shows_its_timeline_and_review(web_bot, http) -> None:
    ref = await resolved(web_bot, f"P2 {EVIL}")
    browser = await signed_in(web_bot, http)
    page = await browser.get(f"/incidents/{ref}")
    assert page.status == 200
    assert 'id="timeline"' in page.text and "Rolled back the deploy" in page.text
    assert "Commander alice" in page.text  # by display name, not id
    assert "<table>" in page.text.split('id="review"')[1]  # the draft's tables, as tables
    assert 'id="review"' in page.text and "<h1>" in page.text.split('id="review"')[1]
    assert "<script>alert" not in page.text
    assert (await browser.get("/incidents/INC-999")).status == 404


async def test_reports_render_charts_and_download(web_bot, http) -> None:
    await resolved(web_bot, "P2 Checkout errors")
    browser = await signed_in(web_bot, http)
    page = await browser.get("/reports?days=7")
    assert page.status == 200 and "the last 7 days" in page.text and page.text.count("<svg") == 7
    as_json = json.loads((await browser.get("/reports.json?days=7")).text)
    assert as_json["window_days"] == 7 and as_json["incidents"]["total"] == 1
    as_csv = (await browser.get("/reports.csv?days=7")).text
    assert as_csv.startswith("metric,key,value")


async def test_the_knowledge_base_finds_resolutions(web_bot, http) -> None:
    first = await resolved(web_bot, "P3 Disk full on db-1")
    second = await resolved(web_bot, "P3 Disk full on db-2")
    browser = await signed_in(web_bot, http)
    found = await browser.get("/kb?q=disk")
    assert first in found.text and second in found.text
    entry = await browser.get(f"/kb/{first}")
    assert "Rolled back the deploy" in entry.text and second in entry.text.split('id="similar"')[1]


async def test_the_status_page_shows_only_what_it_should(web_bot, http) -> None:
    shown = await declare(web_bot, f"P1 {EVIL}")
    hidden = await declare(web_bot, "P2 Payroll export")
    await web_bot.slack.command(f"{hidden.id} ack")
    reply = await web_bot.slack.command(f"{hidden.id} statuspage hide")
    assert f"{hidden.id} is kept off the status page" in reply.json["text"]
    await web_bot.slack.command(f"{shown.id} update We are failing over <@U0ALICE|alice>")
    async with http.get(web_bot.url + "/status") as answer:  # public: no session
        page = await answer.text()
    assert answer.status == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "We are failing over" in page
    assert "Payroll" not in page
    assert "U0ALICE" not in page and "alice" not in page.lower().split("<main>")[1]
    assert shown.channel.id not in page and "timeline" not in page


async def test_every_page_needs_a_session_but_the_public_status_page(web_bot, http) -> None:
    incident = await declare(web_bot, "P3 Slow search")
    pages = ["/", "/live/dashboard", "/incidents", "/incidents.csv", f"/incidents/{incident.id}"]
    pages += ["/reports", "/reports.csv", "/reports.json", "/kb", f"/kb/{incident.id}"]
    for path in pages:
        async with http.get(
            web_bot.url + path, allow_redirects=False, headers={"Accept": "text/html"}
        ) as page:
            assert page.status == 302 and page.headers["Location"].startswith("/login?"), path
        async with http.get(web_bot.url + path, allow_redirects=False) as script:
            assert script.status == 401, path
    async with http.get(web_bot.url + "/status", allow_redirects=False) as status:
        assert status.status == 200


async def test_notes_and_updates_are_escaped_on_the_incident_page(web_bot, http) -> None:
    incident = await declare(web_bot, "P3 Slow search")
    await web_bot.slack.command(f"{incident.id} note {EVIL} <!channel>")
    await web_bot.slack.command(f"{incident.id} update {EVIL}")
    browser = await signed_in(web_bot, http)
    page = (await browser.get(f"/incidents/{incident.id}")).text
    timeline = page.split('id="timeline"')[1]
    assert timeline.count("&lt;script&gt;alert(1)&lt;/script&gt; R&amp;D &lt;b&gt;down&lt;/b&gt;") == 2
    assert "<script>alert" not in page and "<b>down" not in page
