"""The App Home tab: store/home.py's facts on both stores, handlers/home.py's view of them (within Slack's
100 blocks, valid Block Kit, nothing typed live), and the Declare incident button."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.config import load_policy
from handlers import home, ids
from handlers.messages import Composer
from handlers.render import Renderer
from store import actions, service
from store import home as home_store
from store.db import Database
from store.home import HomeFacts, home_facts
from store.machine import Action
from store.models import Incident, State
from tests.conftest import ANNOUNCE, RunningBot
from tests.helpers import mrkdwn_texts
from tests.signed import load_payload, select, slack_encoded, text_input
from tests.test_templates import check_mrkdwn

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
COMPOSER = Composer(policy=POLICY, renderer=Renderer(timezone=POLICY.timezone))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ALICE, BOB = "U_ALICE", "U_BOB"
RESOLVE = {"summary": "Restarted the pool", "cause": "capacity", "resolution": "restart"}


async def declared(
    db: Database, title: str, *, priority: str = "P3", reporter: str = BOB, ago: timedelta = timedelta()
) -> int:
    async with db.write() as session:
        change = await service.declare(
            session, policy=POLICY, title=title, priority=priority, reporter=reporter, now=NOW - ago
        )
        return change.incident.number


async def changed(
    db: Database, number: int, use_case: Any, *args: Any, actor: str = BOB, **given: Any
) -> None:
    """`use_case` on incident `number`, by `actor`, a minute before NOW."""
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        await use_case(
            session, incident, *args, policy=POLICY, actor=actor, now=NOW - timedelta(minutes=1), **given
        )


async def facts_of(db: Database, user: str = ALICE, *, now: datetime = NOW) -> HomeFacts:
    async with db.read() as session:
        return await home_facts(session, user=user, now=now, policy=POLICY)


def ids_of(entries: list) -> list[int]:
    return [e.incident.number for e in entries]


def shown(view: dict[str, Any]) -> str:
    return "\n".join(mrkdwn_texts(view["blocks"]))


def check(view: dict[str, Any]) -> None:
    """What Slack would accept for views.publish, and nothing typed live in it."""
    assert view["type"] == "home"
    assert 0 < len(view["blocks"]) <= 100
    View(**view).validate_json()
    for block in view["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
    for text in mrkdwn_texts(view["blocks"]):
        check_mrkdwn(text)


async def test_the_tab_lists_the_persons_incidents_and_every_open_one_by_priority_then_age(
    db: Database,
) -> None:
    reported = await declared(db, "Checkout slow", reporter=ALICE, ago=timedelta(minutes=10))
    others = await declared(db, "Search down", priority="P1", ago=timedelta(minutes=5))
    scribe = await declared(db, "Queue backlog", ago=timedelta(hours=2))
    await changed(db, scribe, service.apply, Action.ACK)
    await changed(db, scribe, service.assign, "scribe", ALICE)
    commands = await declared(db, "Payments failing", priority="P2", ago=timedelta(minutes=1))
    await changed(db, commands, service.apply, Action.ACK, actor=ALICE)
    resolved = await declared(db, "Was broken", reporter=ALICE, priority="P1", ago=timedelta(hours=3))
    await changed(db, resolved, service.apply, Action.ACK, actor=ALICE)
    await changed(db, resolved, service.apply, Action.RESOLVE, actor=ALICE, **RESOLVE)

    facts = await facts_of(db)

    assert ids_of(facts.mine) == [commands, scribe, reported] and facts.mine_total == 3
    assert [e.roles for e in facts.mine] == [("commander",), ("scribe",), ("reporter",)]
    assert ids_of(facts.open) == [others, commands, scribe, reported] and facts.open_total == 4
    view = home.render_home(COMPOSER, facts)
    check(view)
    texts = mrkdwn_texts(view["blocks"])
    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert headers == ["Your incidents (3)", "All open incidents (4)", "Your action items (0)"]
    order = [t.split("*")[1] for t in texts if t.startswith(":")]  # each incident's line, by its id
    assert order == [f"INC-{n}" for n in (commands, scribe, reported, others, commands, scribe, reported)]
    assert f"INC-{resolved}" not in shown(view)
    assert "you: commander" in texts[0] and "commander <@U_ALICE>" in texts[0]
    assert "Search down" not in " ".join(texts[:3]) and "commander none" in texts[3]
    assert "_No open action items._" in texts


async def test_an_sla_is_shown_due_in_breached_or_met(db: Database) -> None:
    breached = await declared(db, "Nobody came", priority="P1", reporter=ALICE, ago=timedelta(minutes=20))
    fresh = await declared(db, "Just now", priority="P1", reporter=ALICE, ago=timedelta(minutes=3))
    met = await declared(db, "Answered", priority="P3", reporter=ALICE, ago=timedelta(minutes=4))
    warned = await declared(db, "Getting late", priority="P1", reporter=ALICE, ago=timedelta(minutes=12))
    await changed(db, met, service.apply, Action.ACK)  # a minute before NOW: three minutes in

    facts = await facts_of(db)
    by_number = {e.incident.number: e for e in facts.open}
    assert by_number[breached].response.breached_at == NOW - timedelta(minutes=5)
    assert by_number[fresh].response.breached_at is None

    view = home.render_home(COMPOSER, facts)
    check(view)
    text = {
        n: next(t for t in mrkdwn_texts(view["blocks"]) if f"*INC-{n}*" in t)
        for n in (breached, fresh, met, warned)
    }
    # P1: response 15m, resolution 4h; P3: response 2h, resolution 24h (app.yaml); warned at 75%.
    assert ":red_circle: response breached 5m ago · resolution due in 3h 40m" in text[breached]
    assert "response due in 12m · resolution due in 3h 57m" in text[fresh]
    assert ":warning:" not in text[fresh]
    assert "response met in 3m · resolution due in 23h 56m" in text[met]
    assert ":warning: response due in 3m · resolution due in 3h 48m" in text[warned]


async def test_a_clock_past_its_due_time_is_breached_before_its_timer_fires(db: Database) -> None:
    number = await declared(db, "Slow", priority="P1", reporter=ALICE, ago=timedelta(minutes=20))
    later = NOW + timedelta(hours=5)  # past the P1 resolution target of 4h; no timer has fired
    facts = await facts_of(db, now=later)
    entry = facts.open[0]
    assert entry.incident.number == number
    assert entry.resolution.breached_at == NOW - timedelta(minutes=20) + timedelta(hours=4)
    assert "resolution breached 1h 20m ago" in shown(home.render_home(COMPOSER, facts))


def test_a_late_response_and_a_breach_re_timed_by_a_reopening_stay_breached() -> None:
    marked = NOW - timedelta(hours=1)
    incident = Incident(
        number=1,
        priority="P1",
        state=State.INVESTIGATING,
        declared_at=NOW - timedelta(hours=5),
        acknowledged_at=NOW - timedelta(hours=5) + timedelta(minutes=25),  # the target is 15m
        resolution_breached_at=marked,
        resolution_paused_seconds=3 * 3600,  # resolved for three hours, then reopened: due in 2h now
    )
    response = home_store.sla(incident, "response", policy=POLICY, now=NOW)
    resolution = home_store.sla(incident, "resolution", policy=POLICY, now=NOW)
    assert home.sla_words(response, NOW) == "response breached (took 25m)"
    assert resolution.due_at == NOW + timedelta(hours=2) and resolution.breached_at == marked
    assert home.sla_words(resolution, NOW) == "resolution breached 1h ago"


async def test_the_persons_own_open_action_items_only(db: Database) -> None:
    number = await declared(db, "Disk full", ago=timedelta(days=3))
    async with db.write() as session:
        incident = await service.find(session, policy=POLICY, ref=f"INC-{number}", lock=True)
        for owner, text, due in (
            (ALICE, "Add disk alerts", date(2026, 11, 30)),
            (BOB, "Not Alice's", date(2026, 11, 30)),
            (ALICE, "Rotate logs", date(2026, 11, 20)),  # overdue
            (ALICE, "Done already", date(2026, 11, 25)),
        ):
            await actions.add(
                session, incident, owner=owner, text=text, due=due, policy=POLICY, actor=BOB, now=NOW
            )
        await actions.complete(session, incident, 4, policy=POLICY, actor=ALICE, now=NOW)

    facts = await facts_of(db)

    assert [(a.item.number, a.overdue) for a in facts.actions] == [(3, True), (1, False)]
    assert facts.actions_total == 2
    view = home.render_home(COMPOSER, facts)
    check(view)
    text = shown(view)
    assert f"*INC-{number} #3* Rotate logs\ndue 2026-11-20 · :warning: *overdue*" in text
    assert f"*INC-{number} #1* Add disk alerts\ndue 2026-11-30" in text
    assert "Not Alice's" not in text and "Done already" not in text


async def test_a_big_workspace_fits_in_100_blocks_and_says_what_it_left_out(db: Database) -> None:
    async with db.write() as session:
        first = None
        for n in range(500):
            change = await service.declare(
                session,
                policy=POLICY,
                title=f"Incident {n}",
                priority=f"P{n % 4 + 1}",
                reporter=ALICE if n % 2 else BOB,
                now=NOW - timedelta(minutes=500 - n),
            )
            first = first or change.incident
        assert first is not None
        for n in range(300):
            await actions.add(
                session,
                first,
                owner=ALICE,
                text=f"Item {n}",
                due=date(2026, 12, 1),
                policy=POLICY,
                actor=BOB,
                now=NOW,
            )
    statements: list[str] = []
    db.trace(statements.append)

    facts = await facts_of(db)

    assert len(statements) == 4  # the counts, the person's incidents, the open ones, the action items
    listed = home_store.MINE_LISTED + home_store.OPEN_LISTED + home_store.ACTIONS_LISTED
    assert (facts.open_total, facts.mine_total, facts.actions_total) == (500, 250, 300)
    view = home.render_home(COMPOSER, facts)
    check(view)
    assert len(view["blocks"]) == listed + 10  # each list's header and "more", the button, ...
    text = shown(view)
    assert "and 460 more open incidents — `/incident list`" in text
    assert "and 240 more of your incidents — `/incident list`" in text
    assert "and 280 more action items — `/incident actions mine`" in text
    incidents = [t for t in mrkdwn_texts(view["blocks"]) if t.startswith(":")]
    assert [t.split("[")[1][:2] for t in incidents[10:]] == ["P1"] * 40  # P1 first, oldest first
    assert incidents[10].startswith(":red_circle: *INC-1* ")


async def test_a_hostile_title_is_shown_literally_and_pings_nobody(db: Database) -> None:
    title = slack_encoded("<!channel> & <b>")  # as Slack sends what a person typed
    await declared(db, title, reporter=ALICE)

    view = home.render_home(COMPOSER, await facts_of(db))

    check(view)
    raw = json.dumps(view)
    assert "<!channel>" not in raw and "<b>" not in raw and "&amp;amp;" not in raw
    assert "@\u2060channel &amp; &lt;b&gt;" in shown(view)  # Slack shows `@channel & <b>`, inert


def home_click(bot: RunningBot, action_id: str, *, user: str = ALICE) -> dict[str, Any]:
    """A block_actions payload of a button on the Home tab, as Slack sends it: its container is the
    view, and it has no channel, message or response_url."""
    payload = load_payload("block_actions")
    for key in ("channel", "message", "response_url"):
        payload.pop(key, None)
    payload.update(
        user={"id": user, "username": "alice", "name": "alice", "team_id": "T0001"},
        container={"type": "view", "view_id": "VHOME1"},
        view={"id": "VHOME1", "type": "home", "blocks": [], "callback_id": "", "private_metadata": ""},
        trigger_id=bot.fake.new_trigger_id(),
        actions=[{"action_id": action_id, "block_id": "home_actions", "type": "button", "action_ts": "1"}],
    )
    return payload


async def test_the_declare_button_opens_the_declare_form_and_declares_from_no_channel(
    bot: RunningBot,
) -> None:
    # tests/signed.py's click() comes from a message; a Home tab's click comes from the view, so it is
    # built here and sent the same way, signed, over HTTP.
    body = urlencode({"payload": json.dumps(home_click(bot, home.HOME_DECLARE))}).encode()
    reply = await bot.slack.post(body, bot.slack.sign(body))

    assert reply.status == 200 and reply.body == ""
    opened = await bot.fake.wait_for(lambda: bot.fake.views)
    assert opened[0]["method"] == "views.open"
    assert opened[0]["view"]["callback_id"] == ids.DECLARE_VIEW
    reply = await bot.slack.submit(
        ids.DECLARE_VIEW,
        {
            "title": {"title": text_input("Login fails")},
            "impact": {"impact": select("significant")},
            "urgency": {"urgency": select("high")},
            "category": {"category": select("application")},
        },
    )
    assert reply.status == 200 and reply.body == ""
    card = await bot.fake.wait_for(
        lambda: [m for m in bot.fake.posts(event_type="incident_declared") if m.channel != ANNOUNCE]
    )
    async with bot.tocsin.db.read() as session:
        incident = await service.find(
            session, policy=bot.tocsin.deps.policy, ref=card[0].payload["incident_id"]
        )
    assert incident.reporter == ALICE and incident.origin_channel_id is None
