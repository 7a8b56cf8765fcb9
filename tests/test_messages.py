"""What each type of change tells Slack: handlers/messages.plan() gives, for every kind of change, the
operations in order (which channel, which operation), the template whose text they carry and the message
metadata other apps read. Built from real objects, without a database: the incident as a row would hold
it, the policy as app.yaml gives it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_policy
from handlers.messages import Composer, plan
from handlers.render import Renderer
from store.change import (
    STATE_CHANGES,
    Acknowledged,
    ActionAdded,
    ActionDone,
    ActionItemReminder,
    AlertCounted,
    AlertReceived,
    AlertResolved,
    Cancelled,
    Change,
    Closed,
    Confirmed,
    Declared,
    DetectedAt,
    Escalated,
    Identified,
    Investigating,
    Monitoring,
    Note,
    OpenAction,
    PirDone,
    PirDraft,
    PirMeetingReminder,
    PirReminder,
    PirScheduled,
    PriorityChanged,
    ProblemLinked,
    Recoded,
    Reopened,
    Resolved,
    RoleAssigned,
    SlaBreached,
    SlaWarning,
    StatusUpdate,
    UpdateNudge,
    of_timer,
)
from store.machine import Action
from store.models import Incident, State
from store.operations import CreateChannel, Dm, Invite, Operation, Page, Pin, Post, Refresh, Topic, Upload
from store.policy import Policy
from store.timeline import SYSTEM_ACTOR

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "app.yaml")  # announce C0123ANNOUNCE, leadership C0123LEADERS, three levels
ANNOUNCE, LEADERS = "C0123ANNOUNCE", "C0123LEADERS"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CARD, ANNOUNCEMENT = Refresh("card"), Refresh("announcement")


def composer(policy: Policy = POLICY) -> Composer:
    return Composer(policy=policy, renderer=Renderer(timezone=policy.timezone))


def incident(state: State = State.INVESTIGATING, **fields: Any) -> Incident:
    values: dict[str, Any] = dict(
        number=7,
        title="Checkout is slow",
        description="",
        category="application",
        priority="P3",
        state=state,
        reporter="U0CAROL",
        commander="U0ALICE",
        channel_id="C0INC7",
        declared_at=NOW - timedelta(hours=1),
        acknowledged_at=NOW - timedelta(minutes=50),
        acknowledged_by="U0ALICE",
        escalation_level=1,
        reopen_count=0,
        resolution_paused_seconds=0,
        alert_count=0,
    )
    values.update(fields)
    return Incident(**values)


def plans(change: Change, policy: Policy = POLICY) -> list[Operation]:
    return plan(change, composer=composer(policy))


def shape(ops: list[Operation]) -> list[tuple[Any, ...]]:
    """Each operation as a person would sum it up: a post by its channel and event, the rest as they are."""
    return [
        ("post", op.channel, (op.metadata or {}).get("event_type")) if isinstance(op, Post) else op
        for op in ops
    ]


def payload(op: Operation) -> dict[str, Any]:
    assert isinstance(op, Post | Dm | Refresh) and op.metadata
    return {
        k: v for k, v in op.metadata["event_payload"].items() if k not in ("incident_id", "priority", "state")
    }


def text(op: Operation) -> str:
    assert isinstance(op, Post | Refresh) and op.text
    return op.text


def test_each_kind_keeps_its_name() -> None:
    """The names the timeline, templates and metadata know stay what they were."""
    kinds = {
        Declared: "declared",
        PriorityChanged: "priority",
        RoleAssigned: "role",
        StatusUpdate: "update",
        Note: "note",
        Escalated: "escalation",
        PirDone: "pir",
        PirScheduled: "pir_scheduled",
        PirDraft: "pir_draft",
        DetectedAt: "detected",
        Recoded: "recode",
        ProblemLinked: "problem",
        Confirmed: "confirmed",
        ActionAdded: "action",
        ActionDone: "action_done",
        AlertReceived: "alert_received",
        AlertCounted: "alert_counted",
        AlertResolved: "alert_resolved",
        SlaWarning: "sla_warning",
        SlaBreached: "sla_breached",
        UpdateNudge: "update_nudge",
        PirReminder: "pir_reminder",
        PirMeetingReminder: "pir_meeting_reminder",
        ActionItemReminder: "action_item_reminder",
    }
    assert {cls: cls.kind for cls in kinds} == kinds
    assert {action: cls.kind for action, cls in STATE_CHANGES.items()} == {a: a.value for a in Action}


def test_declared_opens_the_channel_pins_the_card_announces_tells_leadership_and_pages() -> None:
    i = incident(State.TRIAGE, priority="P1", commander=None, acknowledged_at=None, acknowledged_by=None)
    ops = plans(Declared(incident=i, actor="U0CAROL"))
    assert shape(ops) == [
        CreateChannel("inc-7-checkout-is-slow"),
        Invite(users=["U0CAROL"]),
        Topic(),
        ("post", None, "incident_declared"),
        Pin("card"),
        ("post", ANNOUNCE, "incident_declared"),
        ("post", LEADERS, "incident_leadership_notice"),
        Invite(users=[], groups=["S0123TIER1"]),
        ("post", None, "escalation_page"),
        Dm(users=[], groups=["S0123TIER1"], page=Page(level=1, repeat=False), metadata=ops[-1].metadata),
    ]
    card, announcement = ops[3], ops[5]
    assert isinstance(card, Post) and (card.render, card.save_as) == ("card", "card")
    assert isinstance(announcement, Post) and announcement.render == "announcement"
    assert "P1 incident INC-7" in text(ops[6])
    assert text(ops[8]).startswith(":pager: Paging level 1 (Service desk) for *INC-7* [P1]")
    assert payload(ops[8]) == {"level": 1, "repeat": False}


def test_declared_without_a_channel_of_its_own_or_paging_posts_the_card_only() -> None:
    policy = replace(POLICY, per_incident=False, announce_channel=None, escalation_levels=())
    i = incident(State.TRIAGE, escalation_level=0, alert_source="alertmanager", reporter="alertmanager")
    assert shape(plans(Declared(incident=i, actor="alertmanager"), policy)) == [
        ("post", None, "incident_declared"),
        Pin("card"),
    ]


def test_acknowledging_invites_the_new_commander_posts_and_refreshes() -> None:
    i = incident(commander="U0BOB", acknowledged_by="U0BOB")
    ops = plans(Acknowledged(incident=i, actor="U0BOB", before="triage", after="investigating"))
    assert shape(ops) == [
        Invite(users=["U0BOB"]),
        ("post", None, "incident_acknowledged"),
        CARD,
        ANNOUNCEMENT,
        Topic(),
    ]
    assert payload(ops[1]) == {"from": "triage", "to": "investigating"}
    assert "<@U0BOB>" in text(ops[1])


@pytest.mark.parametrize(
    ("made", "before", "after", "text_given", "event", "seen"),
    [
        (
            Investigating,
            "identified",
            "investigating",
            None,
            "incident_status_changed",
            "is now *investigating*",
        ),
        (Identified, "investigating", "identified", None, "incident_status_changed", "is now *identified*"),
        (Monitoring, "identified", "monitoring", None, "incident_status_changed", "is now *monitoring*"),
        (
            Cancelled,
            "triage",
            "cancelled",
            "false alarm",
            "incident_cancelled",
            "cancelled by <@U0ALICE>: false alarm",
        ),
    ],
)
def test_a_move_of_state_posts_its_event_and_refreshes_card_announcement_and_topic(
    made: type[Any], before: str, after: str, text_given: str | None, event: str, seen: str
) -> None:
    i = incident(State(after))
    ops = plans(made(incident=i, actor="U0ALICE", before=before, after=after, text=text_given))
    assert shape(ops) == [("post", None, event), CARD, ANNOUNCEMENT, Topic()]
    assert payload(ops[0]) == {"from": before, "to": after}
    assert seen in text(ops[0])


def test_without_an_announcement_or_incident_channel_a_move_refreshes_the_card_only() -> None:
    policy = replace(POLICY, announce_channel=None, per_incident=False)
    i = incident(State.IDENTIFIED)
    change = Identified(incident=i, actor="U0ALICE", before="investigating", after="identified")
    assert shape(plans(change, policy)) == [("post", None, "incident_status_changed"), CARD]


def test_resolving_asks_a_reporter_who_is_a_person_to_confirm() -> None:
    i = incident(State.RESOLVED, resolved_at=NOW)
    ops = plans(Resolved(incident=i, actor="U0ALICE", before="monitoring", after="resolved", text="fixed"))
    assert shape(ops) == [
        ("post", None, "incident_resolved"),
        ("post", None, "closure_confirmation_requested"),
        CARD,
        ANNOUNCEMENT,
        Topic(),
    ]
    prompt = ops[1]
    assert isinstance(prompt, Post) and prompt.save_as == "confirmation"
    assert payload(prompt) == {"reporter": "U0CAROL"}
    assert "<@U0CAROL>, you reported *INC-7*" in text(prompt)


def test_resolving_an_incident_monitoring_opened_asks_nobody() -> None:
    i = incident(State.RESOLVED, resolved_at=NOW, reporter="alertmanager", alert_source="alertmanager")
    ops = plans(Resolved(incident=i, actor="U0ALICE", before="monitoring", after="resolved", text="fixed"))
    assert shape(ops) == [("post", None, "incident_resolved"), CARD, ANNOUNCEMENT, Topic()]


def test_reopening_settles_the_prompt() -> None:
    i = incident(State.INVESTIGATING, reopen_count=1)
    ops = plans(Reopened(incident=i, actor="U0CAROL", before="resolved", after="investigating", text="again"))
    assert shape(ops)[0] == ("post", None, "incident_reopened")
    settled = ops[1]
    assert isinstance(settled, Refresh) and settled.target == "confirmation"
    assert "Reopened by <@U0CAROL>: again, so this question is closed." in text(settled)
    assert ops[2:] == [CARD, ANNOUNCEMENT, Topic()]


def test_closing_by_itself_says_why_and_lists_the_open_action_items() -> None:
    i = incident(State.CLOSED, closed_at=NOW)
    item = OpenAction(number=2, owner="U0BOB", text="Grow the disk", due=date(2026, 12, 1))
    change = Closed(
        incident=i,
        actor=SYSTEM_ACTOR,
        before="resolved",
        after="closed",
        open_actions=(item,),
        auto=True,
        reason="resolved more than 3 days ago",
    )
    ops = plans(change)
    assert shape(ops)[0] == ("post", None, "incident_closed")
    assert payload(ops[0]) == {
        "from": "resolved",
        "to": "closed",
        "auto": True,
        "reason": "resolved more than 3 days ago",
    }
    assert "closed by itself: resolved more than 3 days ago" in text(ops[0])
    assert "1 action item is still open" in text(ops[0])
    assert text(ops[0]).endswith("• #2 <@U0BOB> due 2026-12-01: Grow the disk")
    assert "Closed by itself: resolved more than 3 days ago." in text(ops[1])
    assert ops[2:] == [CARD, ANNOUNCEMENT, Topic()]


def test_closing_by_hand() -> None:
    i = incident(State.CLOSED, closed_at=NOW, reporter="alertmanager", alert_source="alertmanager")
    ops = plans(Closed(incident=i, actor="U0ALICE", before="resolved", after="closed"))
    assert shape(ops) == [("post", None, "incident_closed"), CARD, ANNOUNCEMENT, Topic()]
    assert payload(ops[0]) == {"from": "resolved", "to": "closed", "auto": False, "reason": "closed by hand"}


def test_raising_the_priority_to_one_leadership_hears_of_tells_leadership() -> None:
    i = incident(priority="P1")
    ops = plans(PriorityChanged(incident=i, actor="U0ALICE", before="P3", after="P1"))
    assert shape(ops) == [
        ("post", None, "incident_priority_changed"),
        ("post", LEADERS, "incident_leadership_notice"),
        CARD,
        ANNOUNCEMENT,
        Topic(),
    ]
    assert payload(ops[0]) == {"from": "P3", "to": "P1"}
    assert "priority changed from P3 to *P1*" in text(ops[0])
    assert "raised from P3 by <@U0ALICE>" in text(ops[1])


def test_lowering_the_priority_tells_no_leadership() -> None:
    i = incident(priority="P2")
    ops = plans(PriorityChanged(incident=i, actor="U0ALICE", before="P1", after="P2"))
    assert shape(ops) == [("post", None, "incident_priority_changed"), CARD, ANNOUNCEMENT, Topic()]


def test_a_new_commander_is_invited_before_the_message_and_the_topic_follows() -> None:
    i = incident(commander="U0BOB")
    ops = plans(RoleAssigned(incident=i, actor="U0ALICE", role="commander", before="U0ALICE", after="U0BOB"))
    assert shape(ops) == [
        Invite(users=["U0BOB"]),
        ("post", None, "incident_role_assigned"),
        CARD,
        ANNOUNCEMENT,
        Topic(),
    ]
    assert payload(ops[1]) == {"role": "commander", "user": "U0BOB"}
    assert "<@U0BOB> is now *commander* of *INC-7* (was <@U0ALICE>)" in text(ops[1])


def test_a_new_scribe_leaves_the_topic_alone() -> None:
    i = incident(scribe="U0DAN")
    ops = plans(RoleAssigned(incident=i, actor="U0ALICE", role="scribe", before=None, after="U0DAN"))
    assert shape(ops) == [
        Invite(users=["U0DAN"]),
        ("post", None, "incident_role_assigned"),
        CARD,
        ANNOUNCEMENT,
    ]


def test_a_status_update_goes_to_the_channel_and_the_announcements_thread() -> None:
    ops = plans(StatusUpdate(incident=incident(), actor="U0ALICE", text="Rolling back"))
    assert shape(ops) == [
        ("post", None, "incident_status_update"),
        ("post", ANNOUNCE, "incident_status_update"),
    ]
    assert isinstance(ops[1], Post) and ops[1].thread == "announcement"
    assert text(ops[0]) == text(ops[1]) == "Update on INC-7 (investigating) from <@U0ALICE>: Rolling back"


@pytest.mark.parametrize(
    "change",
    [
        Note(incident=incident(), actor="U0ALICE", text="noted"),
        DetectedAt(incident=incident(), actor="U0ALICE", detected_at=NOW - timedelta(hours=2)),
        AlertCounted(incident=incident(), actor="alertmanager", count=4, source="alertmanager"),
    ],
    ids=["note", "detected", "alert counted"],
)
def test_changes_that_say_nothing(change: Change) -> None:
    assert plans(change) == []


def test_escalating_by_hand_pages_the_next_level_with_who_and_why() -> None:
    i = incident(escalation_level=2)
    ops = plans(Escalated(incident=i, actor="U0ALICE", level=2, repeat=False, reason="db down"))
    page = Page(level=2, repeat=False, by="U0ALICE", reason="db down")
    assert shape(ops) == [
        Invite(users=["U0123ONCALL"]),
        ("post", None, "escalation_page"),
        Dm(users=["U0123ONCALL"], groups=[], page=page, metadata=ops[2].metadata),
        CARD,
    ]
    assert payload(ops[1]) == {"level": 2, "repeat": False}
    assert "escalated by <@U0ALICE>: db down" in text(ops[1])


def test_the_schedule_repeating_a_page_names_nobody() -> None:
    i = incident(escalation_level=3, commander=None)
    ops = plans(Escalated(incident=i, actor=SYSTEM_ACTOR, level=3, repeat=True))
    assert isinstance(ops[2], Dm) and ops[2].page == Page(level=3, repeat=True)
    assert text(ops[1]).startswith(":pager: Paging again level 3 (Incident manager)")
    assert "not acknowledged yet" in text(ops[1])


@pytest.mark.parametrize(
    ("made", "event", "seen"),
    [
        (ActionAdded, "action_item_added", ":memo: Action 3"),
        (ActionDone, "action_item_done", ":white_check_mark: Action 3"),
    ],
)
def test_an_action_item_added_or_done(made: type[Any], event: str, seen: str) -> None:
    change = made(
        incident=incident(),
        actor="U0ALICE",
        number=3,
        owner="U0BOB",
        text="Add an alert",
        due=date(2026, 12, 1),
    )
    ops = plans(change)
    assert shape(ops) == [("post", None, event)]
    assert payload(ops[0]) == {"action": 3, "owner": "U0BOB", "due": "2026-12-01"}
    assert text(ops[0]).startswith(seen) and "Add an alert" in text(ops[0])


def test_a_confirmation_while_the_review_is_owed_settles_the_prompt() -> None:
    i = incident(State.RESOLVED, priority="P1", confirmed_by="U0CAROL", confirmed_at=NOW)
    ops = plans(Confirmed(incident=i, actor="U0CAROL", waiting="its post-incident review is required"))
    assert shape(ops)[0] == ("post", None, "incident_confirmed")
    assert payload(ops[0]) == {"by": "U0CAROL"}
    assert "stays resolved until it closes: its post-incident review is required" in text(ops[0])
    assert isinstance(ops[1], Refresh) and ops[1].target == "confirmation"
    assert "Confirmed restored by <@U0CAROL>. It closes once" in text(ops[1])
    assert ops[2:] == [CARD]


def test_a_confirmation_that_closed_the_incident_is_followed_by_the_closing() -> None:
    i = incident(State.CLOSED, confirmed_by="U0CAROL", confirmed_at=NOW, closed_at=NOW)
    closed = Closed(
        incident=i, actor="U0CAROL", before="resolved", after="closed", reason="service confirmed restored"
    )
    ops = plans(Confirmed(incident=i, actor="U0CAROL", then=closed))
    assert shape(ops)[:2] == [("post", None, "incident_confirmed"), ("post", None, "incident_closed")]
    assert payload(ops[1])["reason"] == "service confirmed restored"
    assert "Confirmed restored by <@U0CAROL>, and closed." in text(ops[2])
    assert ops[3:] == [CARD, ANNOUNCEMENT, Topic()]


def test_recoding_names_the_codes_before_and_after() -> None:
    i = incident(State.CLOSED, cause_code="capacity", resolution_code="rollback")
    change = Recoded(
        incident=i,
        actor="U0ALICE",
        cause_before="unknown",
        resolution_before="rollback",
        cause="capacity",
        resolution="rollback",
    )
    ops = plans(change)
    assert shape(ops) == [("post", None, "incident_recoded"), CARD]
    assert payload(ops[0]) == {"from": "unknown/rollback", "to": "capacity/rollback"}
    assert "cause `capacity` (was `unknown`), resolution `rollback`." in text(ops[0])


def test_a_problem_link_and_a_review_done_redraw_what_shows_them() -> None:
    assert plans(ProblemLinked(incident=incident(), actor="U0ALICE", key="PRB-12")) == [CARD]
    assert plans(PirDone(incident=incident(), actor="U0ALICE", link="https://wiki/pir")) == [
        CARD,
        ANNOUNCEMENT,
    ]


def test_a_review_meeting_scheduled() -> None:
    at = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    ops = plans(PirScheduled(incident=incident(State.RESOLVED), actor="U0ALICE", meeting_at=at))
    assert shape(ops) == [("post", None, "pir_meeting_scheduled"), CARD]
    assert payload(ops[0]) == {"meeting_at": "2026-11-25T14:30:00+00:00"}
    assert text(ops[0]).startswith(":calendar: The post-incident review meeting of *INC-7*")


def test_the_review_draft_is_uploaded_to_the_incident_channel() -> None:
    ops = plans(PirDraft(incident=incident(State.RESOLVED), actor="U0ALICE", document="# Review\n"))
    assert len(ops) == 1 and isinstance(ops[0], Upload)
    upload = ops[0]
    assert (upload.channel, upload.filename, upload.title, upload.content) == (
        None,
        "inc-7-post-incident-review.md",
        "Post-incident review: INC-7 Checkout is slow",
        "# Review\n",
    )
    assert upload.comment.startswith("Post-incident review draft of INC-7, requested by <@U0ALICE>.")


def test_an_alert_firing_again_is_noticed_and_redraws_the_card_when_asked() -> None:
    i = incident(alert_source="alertmanager", alert_count=5)
    change = AlertReceived(
        incident=i, actor="alertmanager", count=5, source="alertmanager", since=3, refresh_card=True
    )
    ops = plans(change)
    assert shape(ops) == [("post", None, "alert_received"), CARD]
    assert payload(ops[0]) == {"count": 5, "source": "alertmanager"}
    assert "was received again: 5 times in all, 3 since the last notice." in text(ops[0])
    counted = AlertCounted(
        incident=i, actor="alertmanager", count=6, source="alertmanager", refresh_card=True
    )
    assert plans(counted) == [CARD]


def test_an_alert_cleared_tells_the_commander() -> None:
    i = incident(alert_source="alertmanager", alert_count=2)
    change = AlertResolved(
        incident=i, actor="alertmanager", count=2, source="alertmanager", cleared_at=NOW, auto_resolved=False
    )
    ops = plans(change)
    assert shape(ops) == [("post", None, "alert_resolved")]
    assert payload(ops[0]) == {"count": 2, "source": "alertmanager", "auto_resolved": False}
    assert text(ops[0]).startswith(":white_check_mark: <@U0ALICE> the alert from alertmanager")


def test_sla_warning_and_breach() -> None:
    due = NOW + timedelta(minutes=30)
    ops = plans(SlaWarning(incident=incident(), actor=SYSTEM_ACTOR, clock="resolution", due_at=due))
    assert shape(ops) == [("post", None, "sla_warning")]
    assert payload(ops[0]) == {"clock": "resolution", "due_at": due.isoformat()}
    assert "resolution SLA: 75% of the" in text(ops[0]) and "<@U0ALICE>" in text(ops[0])
    p1 = incident(priority="P1", commander=None)
    ops = plans(SlaBreached(incident=p1, actor=SYSTEM_ACTOR, clock="response", due_at=NOW))
    assert shape(ops) == [
        ("post", None, "sla_breached"),
        ("post", LEADERS, "sla_breached"),
        CARD,
        ANNOUNCEMENT,
    ]
    assert "<!subteam^S0123TIER1>" in text(ops[0])  # no commander: the paged level hears of it
    assert text(ops[0]) == text(ops[1])


def test_an_update_nudge_and_review_reminders() -> None:
    ops = plans(UpdateNudge(incident=incident(), actor=SYSTEM_ACTOR))
    assert shape(ops) == [("post", None, "update_nudge")] and payload(ops[0]) == {}
    assert text(ops[0]).startswith(":speech_balloon: <@U0ALICE>")
    due = NOW - timedelta(days=1)
    ops = plans(PirReminder(incident=incident(State.RESOLVED), actor=SYSTEM_ACTOR, due_at=due, overdue=True))
    assert shape(ops) == [("post", None, "pir_reminder")]
    assert payload(ops[0]) == {"due_at": due.isoformat()}
    assert "is *overdue*" in text(ops[0])


def test_a_meeting_reminder_mentions_the_role_holders_and_the_reporter() -> None:
    i = incident(State.RESOLVED, comms="U0DAN", pir_meeting_at=NOW + timedelta(hours=1))
    ops = plans(PirMeetingReminder(incident=i, actor=SYSTEM_ACTOR, meeting_at=NOW + timedelta(hours=1)))
    assert shape(ops) == [("post", None, "pir_meeting_reminder")]
    assert payload(ops[0]) == {"meeting_at": (NOW + timedelta(hours=1)).isoformat()}
    assert text(ops[0]).startswith(":calendar: <@U0ALICE> <@U0DAN> <@U0CAROL>")


def test_an_action_item_reminder_mentions_its_owner() -> None:
    change = ActionItemReminder(
        incident=incident(),
        actor=SYSTEM_ACTOR,
        number=3,
        owner="U0BOB",
        text="Add an alert",
        due=date(2026, 11, 20),
    )
    ops = plans(change)
    assert shape(ops) == [("post", None, "action_item_reminder")]
    assert payload(ops[0]) == {"action": 3, "due": "2026-11-20"}
    assert text(ops[0]).startswith(":alarm_clock: <@U0BOB> action 3 of *INC-7* was due 2026-11-20")


def test_a_fired_timer_becomes_its_type() -> None:
    i = incident()
    due = NOW + timedelta(minutes=5)
    assert of_timer(
        "sla_warning", i, {"clock": "response", "due_at": due.isoformat()}, actor=SYSTEM_ACTOR
    ) == (SlaWarning(incident=i, actor=SYSTEM_ACTOR, clock="response", due_at=due))
    assert of_timer("escalation", i, {"level": 2, "repeat": False}, actor=SYSTEM_ACTOR) == Escalated(
        incident=i, actor=SYSTEM_ACTOR, level=2, repeat=False
    )
    facts = {"action": 3, "due": "2026-11-20", "owner": "U0BOB", "text": "Add an alert"}
    assert of_timer("action_item_reminder", i, facts, actor=SYSTEM_ACTOR) == ActionItemReminder(
        incident=i, actor=SYSTEM_ACTOR, number=3, owner="U0BOB", text="Add an alert", due=date(2026, 11, 20)
    )
