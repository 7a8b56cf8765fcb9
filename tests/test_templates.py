"""Every message template renders valid JSON whose blocks pass slack_sdk's Block Kit validation, in every
state, with hostile user text; in mrkdwn, every `<…>` is markup Tocsin means (a mention, a link, its own
user-group page) and every `&` an entity, so nothing typed pings a channel and no placeholder is raw."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.config import load_policy
from handlers import ids, shortcuts, views
from handlers.messages import Composer, channel_name
from handlers.render import TEMPLATES, Renderer, TemplatesMissing
from store import oncall, rota
from store.change import (
    STATE_CHANGES,
    Change,
    Confirmed,
    Escalated,
    PirDraft,
    PriorityChanged,
    Recoded,
    Reopened,
    RoleAssigned,
    StatusUpdate,
)
from store.machine import Action
from store.models import ActionItem, CoverRequest, Incident, ScheduleOverride, State, TimelineEntry
from store.policy import IMPACTS, PRIORITIES, URGENCIES
from tests.helpers import mrkdwn_texts

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")
COMPOSER = Composer(policy=POLICY, renderer=Renderer(timezone=POLICY.timezone))
# Stored user text as Slack sends it, plus a bare `&` and `<` (older rows kept modal text raw).
EVIL = "<!channel> & <@U999|boss> <https://evil.example|click> <!subteam^S0SRE|@sre> R&amp;D a<b " + "x" * 80
# What may stand between < and > in mrkdwn: a user or channel mention, a link, Tocsin's own group page.
_MARKUP = re.compile(
    r"<(?:@[UW][A-Z0-9_]+(?:\|[^<>]*)?|#[CG][A-Z0-9_]+(?:\|[^<>]*)?|!subteam\^S0123[A-Z0-9]+|https?://[^\s|<>]+(?:\|[^<>]*)?)>"
)
_BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")
_QUOTE = re.compile(r"^> ", re.MULTILINE)  # mrkdwn's block quote
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
    for shown in (message.text, *mrkdwn_texts(message.blocks)):
        check_mrkdwn(shown)


def check_mrkdwn(shown: str) -> None:
    left = _MARKUP.sub("", _QUOTE.sub("", shown))
    assert "<" not in left and ">" not in left, shown
    assert not _BARE_AMPERSAND.search(shown), shown
    assert "&amp;amp;" not in shown and "&amp;lt;" not in shown, shown  # nothing escaped twice


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


EVENTS = [
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
]


@pytest.mark.parametrize("name,kind,before,after", EVENTS)
def test_event_messages(name: str, kind: str, before: str | None, after: str | None) -> None:
    i = incident(State.RESOLVED)
    check(COMPOSER.render(name, i, change=event_change(i, kind, before, after)))


def event_change(i: Incident, kind: str, before: str | None, after: str | None) -> Change:
    if kind == "priority":
        return PriorityChanged(incident=i, actor="U2", before=before or "", after=after or "")
    if kind == "role":
        return RoleAssigned(incident=i, actor="U2", role="comms", before=before, after=after or "")
    if kind == "update":
        return StatusUpdate(incident=i, actor="U2", text=EVIL * 20)
    made = STATE_CHANGES[Action(kind)]
    return made(incident=i, actor="U2", before=before or "", after=after or "", text=EVIL * 20)


def test_escalation_page_mentions_users_groups_and_channels() -> None:
    i = incident(State.TRIAGE)
    level = POLICY.escalation_levels[0]
    change = Escalated(incident=i, actor="U2", level=1, repeat=False, reason=EVIL)
    message = COMPOSER.render(
        "escalation_page.json.j2",
        i,
        change=change,
        page_level=level,
        page_number=1,
        page_targets=COMPOSER.targets(i, 1),
        repeat=False,
    )
    check(message)
    assert "<!subteam^S0123TIER1>" in message.text
    nobody = COMPOSER.render(
        "escalation_page.json.j2",
        i,
        change=change,
        page_level=level,
        page_number=2,
        page_targets=[],
        repeat=False,
    )
    check(nobody)
    assert "nobody on call" in nobody.text


def test_timeline_list_and_help() -> None:
    i = incident(State.CLOSED)
    entries = [
        TimelineEntry(at=NOW, actor="U1", kind=kind, from_value="a", to_value="U5", text=EVIL)
        for kind in ("declared", "update", "note", "priority", "role", "escalation", "pir", "ack") * 40
    ]
    check(
        COMPOSER.render("incident_timeline.json.j2", i, entries=entries, names={"U1": "<!channel> R&D <b>"})
    )
    many = [incident(State.INVESTIGATING, number=n) for n in range(40)]
    check(COMPOSER.renderer.message("incident_list.json.j2", incidents=many, total=120, policy=POLICY))
    check(COMPOSER.renderer.message("incident_list.json.j2", incidents=[], total=0, policy=POLICY))
    check(COMPOSER.renderer.message("help.json.j2", prefix="INC"))


WHO = ["<@U2>", "<!subteam^S0123TIER1>"]  # Tocsin's own mentions: live
ACTION = {"action": 3, "owner": "U5", "text": EVIL, "due": "2026-12-01"}
DETAIL = {"status": "firing", "name": EVIL, "summary": EVIL, "labels": {"a&b": EVIL, "<x>": "y"}}
ALERT = {"source": "alertmanager", "since": 2, "refired": False, "started_at": NOW, "details": [DETAIL] * 12}
NOTICES = [
    ("action_item_added.json.j2", ACTION),
    ("action_item_done.json.j2", ACTION),
    ("action_item_reminder.json.j2", {**ACTION, "who": WHO}),
    ("alert_received.json.j2", {**ALERT, "count": 1}),
    ("alert_received.json.j2", {**ALERT, "count": 5, "refired": True}),
    ("alert_resolved.json.j2", {**ALERT, "count": 5, "auto_resolved": False, "cleared_at": NOW, "who": WHO}),
    ("alert_resolved.json.j2", {**ALERT, "count": 5, "auto_resolved": True, "cleared_at": NOW, "who": []}),
    ("closure_confirmation_requested.json.j2", {"outcome": None}),
    ("closure_confirmation_requested.json.j2", {"outcome": "reopen"}),
    (
        "escalation_page_dm.json.j2",
        {
            "page": {"level": 1, "repeat": False, "by": "U2", "reason": EVIL},
            "page_level": POLICY.escalation_levels[0],
        },
    ),
    ("incident_confirmed.json.j2", {}),
    ("incident_recoded.json.j2", {}),
    ("pir_meeting_reminder.json.j2", {"who": WHO, "meeting_at": NOW}),
    ("pir_meeting_scheduled.json.j2", {"meeting_at": NOW}),
    ("pir_reminder.json.j2", {"who": WHO, "due_at": NOW, "overdue": True}),
    ("sla_breached.json.j2", {"who": WHO, "clock": "response", "due_at": NOW}),
    ("sla_warning.json.j2", {"who": WHO, "clock": "resolution", "due_at": NOW}),
    ("update_nudge.json.j2", {"who": WHO}),
]


@pytest.mark.parametrize("name,extra", NOTICES)
def test_notices_show_user_text_and_their_own_placeholders_safely(name: str, extra: dict) -> None:
    i = incident(State.RESOLVED)
    changes: dict[str, Change] = {
        "incident_confirmed.json.j2": Confirmed(incident=i, actor="U2", waiting=EVIL),
        "incident_recoded.json.j2": Recoded(
            incident=i,
            actor="U2",
            cause_before="capacity",
            resolution_before="rollback",
            cause=i.cause_code,
            resolution=i.resolution_code,
        ),
    }
    reopened = Reopened(incident=i, actor="U2", before="resolved", after="investigating", text=EVIL)
    change = changes.get(name, reopened)
    check(COMPOSER.render(name, i, change=change, **extra))


def test_lists_stats_similar_and_the_upload_comment() -> None:
    i = incident(State.CLOSED, number=3)
    items = [
        ActionItem(incident_number=7, number=n, owner="U5", text=EVIL, due_on=NOW.date(), created_at=NOW)
        for n in range(30)
    ]
    for mine in (True, False):
        check(
            COMPOSER.renderer.message(
                "action_items.json.j2", items=items, incident=i, mine=mine, today=NOW.date(), policy=POLICY
            )
        )
    check(
        COMPOSER.renderer.message("incident_similar.json.j2", incidents=[i] * 5, policy=POLICY, phrase=EVIL)
    )
    check(COMPOSER.renderer.message("incident_stats.json.j2", title="Figures", lines=[EVIL] * 50))
    change = PirDraft(incident=i, actor="U2", document="")
    check_mrkdwn(COMPOSER.renderer.text("pir_uploaded.txt.j2", **COMPOSER.context(i, change=change)))


def test_plain_text_reads_as_a_person_reads_it() -> None:
    """Headers and channel names show the readable title: no entities, no markup. The topic, which shows
    mentions, keeps the title as Slack sends it."""
    i = incident(State.INVESTIGATING, title="R&amp;D is down, see <#C0OPS|ops> &amp; <@U0CAROL|carol>")
    for message in (COMPOSER.card(i), COMPOSER.announcement(i), COMPOSER.render("incident_show.json.j2", i)):
        header = next(b for b in message.blocks if b["type"] == "header")["text"]["text"]
        assert header == ":red_circle: INC-7 · R&D is down, see #ops & @carol"
    topic = COMPOSER.topic(i)
    assert topic.startswith(
        "INC-7 [P1] R&amp;D is down, see <#C0OPS|ops> &amp; <@U0CAROL|carol> | investigating"
    )
    name = channel_name("inc-{number}-{slug}", number=7, title=i.title, prefix="INC")
    assert name == "inc-7-r-d-is-down-see-ops-carol"


def test_on_call_messages() -> None:
    """`/incident oncall` for many schedules stays within 50 blocks; hand-offs (to someone and to
    nobody), their DM, and a cover request before and after it is taken."""
    zone = ZoneInfo("Europe/London")
    layer = rota.Layer("weekly", ("U1", "U2"), timedelta(weeks=1), datetime(2026, 12, 7, 9))
    schedule = rota.Schedule("platform", zone, (layer,), channel="C0ONCALL", usergroup="S0PLATFORM")
    shift = rota.Shift("U1", NOW, NOW + timedelta(days=7), layer="weekly")
    nobody = rota.Shift(None, NOW, NOW + timedelta(days=1))
    override = ScheduleOverride(
        id=3,
        schedule="platform",
        user="U3",
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=8),
        created_at=NOW,
        created_by="U1",
    )
    cover = CoverRequest(
        id=4,
        schedule="platform",
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=8),
        requested_by="U1",
        created_at=NOW,
        covered_by="U2",
    )
    listing = oncall.OnCall(schedule, shift, [shift, nobody, shift], [override] * 12, [cover] * 12)
    renderer = COMPOSER.renderer
    for many in (0, 1, 25):
        shown = renderer.message("oncall_show.json.j2", schedules=[listing] * many, everything=True)
        check(shown)
    for incoming, outgoing in ((shift, "U2"), (nobody, "U1"), (shift, None)):
        handoff = oncall.Handoff(schedule, outgoing, incoming, NOW)
        for name in ("oncall_handoff.json.j2", "oncall_handoff_dm.json.j2"):
            check(renderer.message(name, schedule=schedule, handoff=handoff, policy=POLICY))
    check(renderer.message("oncall_cover_requested.json.j2", schedule=schedule, cover=cover, ids=ids))
    check(renderer.message("oncall_cover_taken.json.j2", schedule=schedule, cover=cover))
    for removed in (False, True):
        check(
            renderer.message(
                "oncall_override_notice.json.j2",
                schedule=schedule,
                override=override,
                actor="U1",
                removed=removed,
            )
        )


def test_every_template_is_checked_here() -> None:
    """A new template joins these tests (hostile text, Block Kit), or this fails."""
    checked = (
        {name for name, _ in NOTICES}
        | {name for name, *_ in EVENTS}
        | {
            "_final_record.j2",
            "_note.json.j2",
            "action_items.json.j2",
            "app_home.json.j2",  # tests/test_home.py, from real rows
            "declare_modal.json.j2",
            "escalation_page.json.j2",
            "help.json.j2",
            "incident_announcement.json.j2",
            "incident_card.json.j2",
            "incident_list.json.j2",
            "incident_show.json.j2",
            "incident_similar.json.j2",
            "incident_stats.json.j2",
            "incident_timeline.json.j2",
            "incident_topic.txt.j2",
            "oncall_cover_requested.json.j2",
            "oncall_cover_taken.json.j2",
            "oncall_handoff.json.j2",
            "oncall_handoff_dm.json.j2",
            "oncall_override_notice.json.j2",
            "oncall_show.json.j2",
            "pir.md.j2",
            "pir_uploaded.txt.j2",
            "resolve_modal.json.j2",
            "timeline_pick_modal.json.j2",
            "update_modal.json.j2",
        }
    )
    assert {path.name for path in TEMPLATES.glob("*.j2")} == checked


class _Deps:
    renderer = COMPOSER.renderer
    composer = COMPOSER
    policy = POLICY


def test_modals_validate() -> None:
    for view in (
        views.declare_view(_Deps, origin_channel="C1"),
        views.resolve_view(_Deps, incident(State.INVESTIGATING)),
        views.update_view(_Deps, incident(State.INVESTIGATING)),
        views.declare_view(_Deps, origin_channel="C1", title=EVIL[:150], description=EVIL),
        shortcuts._pick_view(
            _Deps, [incident(State.INVESTIGATING)] * 120, channel="C1", ts="1.2", answer_to=""
        ),
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
        ("R&amp;D see <https://status.example.com/x?a=1&amp;b=2|status page>", "inc-7-r-d-see-status-page"),
        ("Down <https://status.example.com>", "inc-7-down-https-status-example-com"),
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


def test_a_missing_template_is_not_taken_for_a_database_outage(tmp_path) -> None:
    """Jinja's TemplateNotFound is an OSError, which the handlers answer as "the database cannot be
    reached"; a missing template must read as this installation's fault instead."""
    (tmp_path / "present.txt.j2").write_text("here")
    renderer = Renderer(timezone=ZoneInfo("UTC"), directory=tmp_path)
    assert renderer.text("present.txt.j2") == "here"
    with pytest.raises(TemplatesMissing, match="absent.txt.j2") as raised:
        renderer.text("absent.txt.j2")
    assert not isinstance(raised.value, OSError)
