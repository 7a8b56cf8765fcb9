"""Every message template renders valid JSON whose blocks pass slack_sdk's Block Kit validation, in every
state, with hostile user text; user text never reaches Slack unescaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.config import load_policy
from handlers import views
from handlers.messages import Composer, channel_name
from handlers.render import Renderer
from store.change import Change
from store.models import Incident, State, TimelineEntry
from store.policy import IMPACTS, PRIORITIES, URGENCIES
from tests.helpers import mrkdwn_texts

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
COMPOSER = Composer(policy=POLICY, renderer=Renderer(timezone=POLICY.timezone))
EVIL = "<!channel> & <@U999|boss> <https://evil.example|click> " + "x" * 80
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def incident(state: State, **fields) -> Incident:
    values = dict(
        number=7,
        title=EVIL[:150],
        description=EVIL * 20,
        category="database",
        impact="extensive",
        urgency="high",
        priority="P1",
        state=state,
        reporter="U1",
        commander="U2",
        comms="U3",
        scribe="U4",
        channel_id="C9",
        declared_at=NOW,
        acknowledged_at=NOW + timedelta(minutes=3),
        acknowledged_by="U2",
        escalation_level=3,
        reopen_count=2,
        summary=EVIL,
        cause_code="capacity",
        resolution_code="restart",
        pir_link="https://wiki/pir",
        resolved_at=NOW + timedelta(hours=1) if state in (State.RESOLVED, State.CLOSED) else None,
    )
    values.update(fields)
    return Incident(**values)


def check(message) -> None:
    assert message.text and len(message.text) <= 40_000
    assert len(message.blocks) <= 50
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()
    shown = message.text + " ".join(mrkdwn_texts(message.blocks))
    assert "<!channel>" not in shown and "<https://evil" not in shown and "<@U999" not in shown


@pytest.mark.parametrize("state", list(State))
def test_card_announcement_and_show_in_every_state(state: State) -> None:
    for fields in (
        {},
        {"commander": None, "description": "", "comms": None, "impact": None, "pir_link": None},
    ):
        i = incident(state, **fields)
        check(COMPOSER.card(i))
        check(COMPOSER.announcement(i))
        check(COMPOSER.render("incident_show.json.j2", i))


@pytest.mark.parametrize(
    "name,kind,before,after",
    [
        ("incident_acknowledged.json.j2", "ack", "triage", "investigating"),
        ("incident_status_changed.json.j2", "identify", "investigating", "identified"),
        ("incident_priority_changed.json.j2", "priority", "P3", "P1"),
        ("incident_role_assigned.json.j2", "role", "U2", "U5"),
        ("incident_status_update.json.j2", "update", None, None),
        ("incident_resolved.json.j2", "resolve", "monitoring", "resolved"),
        ("incident_closed.json.j2", "close", "resolved", "closed"),
        ("incident_reopened.json.j2", "reopen", "resolved", "investigating"),
        ("incident_cancelled.json.j2", "cancel", "triage", "cancelled"),
        ("incident_leadership_notice.json.j2", "priority", "P3", "P1"),
    ],
)
def test_event_messages(name: str, kind: str, before: str | None, after: str | None) -> None:
    i = incident(State.RESOLVED)
    change = Change(
        incident=i,
        kind=kind,
        actor="U2",
        before=before,
        after=after,
        text=EVIL * 20 if kind != "role" else "comms",
    )
    check(COMPOSER.render(name, i, change=change))


def test_escalation_page_mentions_users_groups_and_channels() -> None:
    i = incident(State.TRIAGE)
    level = POLICY.escalation_levels[0]
    change = Change(incident=i, kind="escalation", actor="U2", text=EVIL)
    message = COMPOSER.render(
        "escalation_page.json.j2", i, change=change, page_level=level, page_number=1, repeat=False
    )
    check(message)
    assert "<!subteam^S0123TIER1>" in message.text


def test_timeline_list_and_help() -> None:
    i = incident(State.CLOSED)
    entries = [
        TimelineEntry(at=NOW, actor="U1", kind=kind, from_value="a", to_value="U5", text=EVIL)
        for kind in ("declared", "update", "note", "priority", "role", "escalation", "pir", "ack") * 40
    ]
    check(COMPOSER.render("incident_timeline.json.j2", i, entries=entries))
    many = [incident(State.INVESTIGATING, number=n) for n in range(40)]
    check(COMPOSER.renderer.message("incident_list.json.j2", incidents=many, total=120, policy=POLICY))
    check(COMPOSER.renderer.message("incident_list.json.j2", incidents=[], total=0, policy=POLICY))
    check(COMPOSER.renderer.message("help.json.j2", prefix="INC"))


class _Deps:
    renderer = COMPOSER.renderer
    composer = COMPOSER
    policy = POLICY


def test_modals_validate() -> None:
    for view in (
        views.declare_view(_Deps, origin_channel="C1"),
        views.resolve_view(_Deps, incident(State.INVESTIGATING)),
        views.update_view(_Deps, incident(State.INVESTIGATING)),
    ):
        View(**view).validate_json()
    declared = views.declare_view(_Deps, origin_channel="C1")
    options = {
        b["block_id"]: [o["value"] for o in b["element"].get("options", [])] for b in declared["blocks"]
    }
    assert options["impact"] == list(IMPACTS) and options["urgency"] == list(URGENCIES)
    assert options["priority"] == list(PRIORITIES) and options["category"] == list(POLICY.categories)


@pytest.mark.parametrize(
    "title,expected",
    [
        ("Database down", "inc-7-database-down"),
        ("  Ünïcode — ça marche!  ", "inc-7-unicode-ca-marche"),
        ("!!!", "inc-7"),
        ("a" * 150, "inc-7-" + "a" * 74),
    ],
)
def test_channel_names_are_slack_legal(title: str, expected: str) -> None:
    assert channel_name("inc-{number}-{slug}", number=7, title=title, prefix="INC") == expected


def test_show_lists_each_milestone_with_its_time_since_declaration() -> None:
    i = incident(
        State.CLOSED,
        detected_at=NOW - timedelta(minutes=20),
        identified_at=NOW + timedelta(minutes=30),
        closed_at=NOW + timedelta(days=1, hours=2),
    )
    shown = COMPOSER.render("incident_show.json.j2", i)
    section = next(b["text"]["text"] for b in shown.blocks if "*Declared*" in str(b))
    when = COMPOSER.renderer.when
    assert section.splitlines() == [
        f"*Detected* {when(NOW - timedelta(minutes=20))} (20m before it was declared)",
        f"*Declared* {when(NOW)}",
        f"*Acknowledged* {when(NOW + timedelta(minutes=3))} (+3m)",
        f"*Identified* {when(NOW + timedelta(minutes=30))} (+30m)",
        f"*Resolved* {when(NOW + timedelta(hours=1))} (+1h)",
        f"*Closed* {when(NOW + timedelta(days=1, hours=2))} (+1d 2h)",
    ]


@pytest.mark.parametrize(
    ("zone", "at", "shown"),
    [
        ("UTC", datetime(2026, 11, 22, 12, 0, tzinfo=UTC), "2026-11-22 12:00 UTC"),
        ("Europe/Berlin", datetime(2026, 11, 22, 12, 5, tzinfo=UTC), "2026-11-22 13:05 CET"),
        ("Europe/Berlin", datetime(2026, 7, 1, 23, 30, tzinfo=UTC), "2026-07-02 01:30 CEST"),
        ("America/New_York", datetime(2026, 1, 1, 3, 9, tzinfo=UTC), "2025-12-31 22:09 EST"),
        ("Asia/Kolkata", datetime(2026, 3, 8, 0, 0, tzinfo=UTC), "2026-03-08 05:30 IST"),
    ],
)
def test_times_are_shown_in_the_configured_zone_with_its_abbreviation(
    zone: str, at: datetime, shown: str
) -> None:
    renderer = Renderer(timezone=ZoneInfo(zone))
    assert renderer.when(at) == shown
    assert renderer.when(None) == "-"
