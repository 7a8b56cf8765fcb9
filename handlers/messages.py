"""What each domain change tells Slack: messages written to the outbox in the caller's transaction."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import ids, text
from handlers.render import Message, Renderer, mention, truncate_text
from store import outbox
from store.change import Change
from store.closure import asks_reporter
from store.models import Incident
from store.policy import Policy
from store.timeline import SYSTEM_ACTOR
from store.timers import clock_due

# Changes that alter what the card and the announcement show.
_REFRESH_ANNOUNCEMENT = {
    "ack",
    "investigate",
    "identify",
    "monitor",
    "resolve",
    "reopen",
    "close",
    "cancel",
    "priority",
    "role",
    "pir",
    "sla_breached",
}
_REFRESH_CARD = _REFRESH_ANNOUNCEMENT | {"escalation", "problem", "pir_scheduled"}
_REMINDERS = {
    "sla_warning",
    "sla_breached",
    "update_nudge",
    "pir_reminder",
    "pir_meeting_reminder",
    "action_item_reminder",
}
# Changes announced in the incident channel with a template of the event's name.
_NOTICES = {
    "action": "action_item_added",
    "action_done": "action_item_done",
    "pir_scheduled": "pir_meeting_scheduled",
}
# Changes that can alter the channel topic (state, priority, commander). The relay renders the topic
# when it delivers the op and calls Slack only if the text differs from the one it last set.
_RETOPIC = {"ack", "investigate", "identify", "monitor", "resolve", "reopen", "close", "cancel", "priority"}
_STATE_EVENTS = {
    "ack": "incident_acknowledged",
    "investigate": "incident_status_changed",
    "identify": "incident_status_changed",
    "monitor": "incident_status_changed",
    "resolve": "incident_resolved",
    "reopen": "incident_reopened",
    "close": "incident_closed",
    "cancel": "incident_cancelled",
    "priority": "incident_priority_changed",
    "role": "incident_role_assigned",
}


def channel_name(template: str, *, number: int, title: str, prefix: str) -> str:
    """A Slack-legal channel name: lowercase letters, digits, - and _, at most 80 characters, from the
    title as a person reads it (`R&amp;D <#C1|ops>` reads `R&D #ops`: `r-d-ops`, not `r-amp-d-c1-ops`),
    a link by its label."""
    readable = text.to_words(title)
    ascii_title = unicodedata.normalize("NFKD", readable).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    name = template.format(number=number, slug=slug, prefix=prefix.lower())
    name = re.sub(r"[^a-z0-9_-]+", "-", name.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-")
    return name[:80].rstrip("-") or f"inc-{number}"


class Composer:
    """Renders the messages for incidents; shared by the handlers, the relay and the scheduler."""

    def __init__(self, *, policy: Policy, renderer: Renderer) -> None:
        self.policy = policy
        self.renderer = renderer

    def public_id(self, incident: Incident) -> str:
        return self.policy.public_id(incident.number)

    def metadata(self, event_type: str, incident: Incident, **extra: Any) -> dict[str, Any]:
        payload = {
            "incident_id": self.public_id(incident),
            "priority": incident.priority,
            "state": incident.state.value,
        }
        payload.update(extra)
        return {"event_type": event_type, "event_payload": payload}

    def context(self, incident: Incident, **extra: Any) -> dict[str, Any]:
        return {
            "incident": incident,
            "id": self.public_id(incident),
            "policy": self.policy,
            "targets": self.policy.priorities[incident.priority],
            "response_due": clock_due(incident, "response", policy=self.policy)[1],
            "resolution_due": clock_due(incident, "resolution", policy=self.policy)[1],
            "level": self.level(incident.escalation_level),
            "ids": ids,
            **extra,
        }

    def responders(self, incident: Incident) -> list[str]:
        """Who a reminder speaks to: the commander, or the current escalation level when there is none."""
        if incident.commander:
            return [mention(incident.commander)]
        level = self.level(incident.escalation_level) or self.level(1)
        return [mention(target) for target in level.notify] if level else []

    def pir_document(self, facts: Any, names: Mapping[str, str] | None = None) -> str:
        """The review draft, in Markdown, from templates/pir.md.j2; `names`: display names by user id."""
        context = self.context(facts.incident)
        return self.renderer.text("pir.md.j2", facts=facts, names=names or {}, **context) + "\n"

    def level(self, number: int) -> Any:
        levels = self.policy.escalation_levels
        return levels[number - 1] if 0 < number <= len(levels) else None

    def topic(self, incident: Incident) -> str:
        """The incident channel's topic (Slack allows 250 characters)."""
        return truncate_text(self.renderer.text("incident_topic.txt.j2", **self.context(incident)), 250)

    def page_dm(self, incident: Incident, page: dict[str, Any]) -> Message:
        """The page as a DM from the app, linking the incident channel (rendered when it is delivered,
        once the channel exists). `page` holds the facts the page was planned with."""
        return self.render(
            "escalation_page_dm.json.j2", incident, page=page, page_level=self.level(page["level"])
        )

    def card(self, incident: Incident) -> Message:
        return self.renderer.message("incident_card.json.j2", **self.context(incident))

    def announcement(self, incident: Incident) -> Message:
        return self.renderer.message("incident_announcement.json.j2", **self.context(incident))

    def render(self, name: str, incident: Incident, **extra: Any) -> Message:
        return self.renderer.message(name, **self.context(incident, **extra))


def _post(message: Message, metadata: dict[str, Any], **where: Any) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies the blocks (about 90 µs a message), which the outbox row's
    # JSON encoding copies anyway.
    return {"text": message.text, "blocks": message.blocks, "metadata": metadata, **where}


async def publish(session: AsyncSession, change: Change, *, composer: Composer, now: datetime) -> None:
    """Write the outbox rows that tell Slack about `change`, in the caller's transaction."""
    await outbox.enqueue_all(
        session, plan(change, composer=composer), now=now, incident_number=change.incident.number
    )


def plan(change: Change, *, composer: Composer) -> list[tuple[str, dict[str, Any]]]:
    incident, policy = change.incident, composer.policy
    ops: list[tuple[str, dict[str, Any]]] = []
    if change.kind == "declared":
        if policy.per_incident:
            name = channel_name(
                policy.name_template,
                number=incident.number,
                title=incident.title,
                prefix=policy.incident_prefix,
            )
            ops.append(("create_channel", {"name": name}))
            reporter = [] if incident.alert_source else [incident.reporter]  # a monitoring source is no user
            ops.extend(_invite(reporter + _role_holders(incident)))
            ops.append(("topic", {}))
        declared = composer.metadata("incident_declared", incident)
        ops.append(("post", {"to": "incident", "render": "card", "save_as": "card", "metadata": declared}))
        ops.append(("pin", {"target": "card"}))
        if policy.announce_channel:
            ops.append(
                (
                    "post",
                    {
                        "channel": policy.announce_channel,
                        "render": "announcement",
                        "save_as": "announcement",
                        "metadata": declared,
                    },
                )
            )
        if policy.priorities[incident.priority].notify_leadership:
            ops.extend(_leadership(change, composer))
        if incident.escalation_level:
            ops.extend(_page(change, composer, level=1, repeat=False))
        return ops

    if change.kind == "escalation":
        ops.extend(_page(change, composer, level=change.extra["level"], repeat=change.extra["repeat"]))
    elif change.kind in _REMINDERS:
        ops.extend(_reminder(change, composer))
    elif change.kind in ("alert_received", "alert_resolved"):
        ops.extend(_alert_notice(change, composer))
    elif change.kind in _NOTICES:
        event = _NOTICES[change.kind]
        fields = {k: v for k, v in change.extra.items() if k in ("action", "due", "owner", "meeting_at")}
        when = (
            {"meeting_at": datetime.fromisoformat(change.extra["meeting_at"])}
            if "meeting_at" in change.extra
            else {}
        )
        message = composer.render(f"{event}.json.j2", incident, change=change, **{**change.extra, **when})
        ops.append(("post", _post(message, composer.metadata(event, incident, **fields), to="incident")))
    elif change.kind == "pir_draft":
        name = f"{composer.public_id(incident).lower()}-post-incident-review.md"
        title = f"Post-incident review: {composer.public_id(incident)} {text.to_plain(incident.title)}"[:250]
        comment = composer.renderer.text("pir_uploaded.txt.j2", **composer.context(incident, change=change))
        ops.append(
            (
                "upload",
                {
                    "to": "incident",
                    "filename": name,
                    "title": title,
                    "content": change.extra["document"],
                    "comment": comment,
                },
            )
        )
    elif change.kind == "update":
        metadata = composer.metadata("incident_status_update", incident)
        message = composer.render("incident_status_update.json.j2", incident, change=change)
        ops.append(("post", _post(message, metadata, to="incident")))
        if policy.announce_channel:
            ops.append(
                ("post", _post(message, metadata, channel=policy.announce_channel, thread="announcement"))
            )
    elif change.kind == "confirmed":
        message = composer.render("incident_confirmed.json.j2", incident, change=change)
        metadata = composer.metadata("incident_confirmed", incident, by=change.actor)
        ops.append(("post", _post(message, metadata, to="incident")))
        if "then" in change.extra:  # the confirmation closed it: the closing refreshes the card and prompt
            return ops + plan(change.extra["then"], composer=composer)
        ops.extend(_settle_prompt(change, composer))
        ops.append(("refresh", {"target": "card"}))
    elif change.kind == "recode":
        message = composer.render("incident_recoded.json.j2", incident, change=change)
        metadata = composer.metadata(
            "incident_recoded", incident, **{"from": change.before, "to": change.after}
        )
        ops.append(("post", _post(message, metadata, to="incident")))
        ops.append(("refresh", {"target": "card"}))
    elif change.kind in _STATE_EVENTS:
        event = _STATE_EVENTS[change.kind]
        extra: dict[str, Any] = {"from": change.before, "to": change.after}
        if change.kind == "role":
            extra = {"role": change.text, "user": change.after}
        if change.kind == "close":
            extra.update(
                auto=bool(change.extra.get("auto")), reason=change.extra.get("reason") or "closed by hand"
            )
        message = composer.render(f"{event}.json.j2", incident, change=change)
        if change.kind == "role":  # the new holder is in the channel before the message naming them
            ops.extend(_invite([change.after] if change.after else []))
        elif change.kind == "ack" and incident.commander == change.actor:  # acknowledging made them commander
            ops.extend(_invite([change.actor]))
        ops.append(("post", _post(message, composer.metadata(event, incident, **extra), to="incident")))
        if change.kind == "resolve" and asks_reporter(incident):
            request = composer.render(
                "closure_confirmation_requested.json.j2", incident, change=change, outcome=None
            )
            metadata = composer.metadata(
                "closure_confirmation_requested", incident, reporter=incident.reporter
            )
            ops.append(("post", _post(request, metadata, to="incident", save_as="confirmation")))
        if change.kind in ("reopen", "close"):
            ops.extend(_settle_prompt(change, composer))
        if change.kind == "priority" and _raised_to_leadership(change, policy):
            ops.extend(_leadership(change, composer))
    if change.kind in _REFRESH_CARD or change.extra.get("refresh_card"):
        ops.append(("refresh", {"target": "card"}))
    if change.kind in _REFRESH_ANNOUNCEMENT and policy.announce_channel:
        ops.append(("refresh", {"target": "announcement"}))
    if policy.per_incident and (
        change.kind in _RETOPIC or (change.kind == "role" and change.text == "commander")
    ):
        ops.append(("topic", {}))
    return ops


def _role_holders(incident: Incident) -> list[str]:
    return [user for user in (incident.commander, incident.comms, incident.scribe) if user]


def _invite(users: list[str], groups: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Invite people into the incident channel before a message that mentions them: Slack notifies a
    mentioned user only if they are a member. User groups are expanded by the relay, when it delivers.
    The relay leaves out channels Tocsin did not create (it pulls nobody into a shared channel)."""
    people = list(dict.fromkeys(u for u in users if u[:1] in ("U", "W")))
    groups = list(dict.fromkeys(groups or []))
    if not people and not groups:
        return []
    return [("invite", {"users": people, "groups": groups} if groups else {"users": people})]


def _settle_prompt(change: Change, composer: Composer) -> list[tuple[str, dict[str, Any]]]:
    """The "Confirm restored / Still broken" prompt, edited to say what became of it, without buttons."""
    incident = change.incident
    if not asks_reporter(incident):  # no prompt was posted
        return []
    message = composer.render(
        "closure_confirmation_requested.json.j2", incident, change=change, outcome=change.kind
    )
    metadata = composer.metadata("closure_confirmation_requested", incident, reporter=incident.reporter)
    return [("refresh", {"target": "confirmation", **_post(message, metadata)})]


def _reminder(change: Change, composer: Composer) -> list[tuple[str, dict[str, Any]]]:
    """SLA warnings and breaches, update nudges and PIR reminders, from the scheduler."""
    incident, extra = change.incident, dict(change.extra)
    when = {key: datetime.fromisoformat(extra[key]) for key in ("due_at", "meeting_at") if key in extra}
    if change.kind == "action_item_reminder":
        who = [mention(extra["owner"])]
    elif change.kind == "pir_meeting_reminder":
        reporter = None if incident.alert_source else incident.reporter
        people = [incident.commander, incident.comms, incident.scribe, reporter]
        who = [mention(p) for p in dict.fromkeys(p for p in people if p)]
    else:
        who = composer.responders(incident)
    message = composer.render(f"{change.kind}.json.j2", incident, who=who, **{**extra, **when})
    payload = {
        key: value
        for key, value in extra.items()
        if key in ("clock", "due_at", "meeting_at", "action", "due")
    }
    metadata = composer.metadata(change.kind, incident, **payload)
    ops = [("post", _post(message, metadata, to="incident"))]
    leadership = composer.policy.leadership_channel
    if (
        change.kind == "sla_breached"
        and leadership
        and composer.policy.priorities[incident.priority].notify_leadership
    ):
        ops.append(("post", _post(message, metadata, channel=leadership)))
    return ops


def _alert_notice(change: Change, composer: Composer) -> list[tuple[str, dict[str, Any]]]:
    """A monitoring alert fired again (coalesced by store/alerts.py) or cleared."""
    incident, extra = change.incident, change.extra
    resolved = change.kind == "alert_resolved"
    who = composer.responders(incident) if resolved and not extra["auto_resolved"] else []
    fields = {"count": extra["count"], "source": extra["source"]}
    if resolved:
        fields["auto_resolved"] = extra["auto_resolved"]
    message = composer.render(
        f"{change.kind}.json.j2",
        incident,
        change=change,
        who=who,
        **{"since": 0, "refired": False, "started_at": None, **extra},
    )
    return [("post", _post(message, composer.metadata(change.kind, incident, **fields), to="incident"))]


def _raised_to_leadership(change: Change, policy: Policy) -> bool:
    before, after = change.before or "P4", change.after or "P4"
    return after < before and policy.priorities[after].notify_leadership


def _leadership(change: Change, composer: Composer) -> list[tuple[str, dict[str, Any]]]:
    channel = composer.policy.leadership_channel
    if not channel:
        return []
    incident = change.incident
    message = composer.render("incident_leadership_notice.json.j2", incident, change=change)
    return [
        ("post", _post(message, composer.metadata("incident_leadership_notice", incident), channel=channel))
    ]


def _page(
    change: Change, composer: Composer, *, level: int, repeat: bool
) -> list[tuple[str, dict[str, Any]]]:
    incident, target = change.incident, composer.level(level)
    if target is None:
        return []
    metadata = composer.metadata("escalation_page", incident, level=level, repeat=repeat)
    message = composer.render(
        "escalation_page.json.j2",
        incident,
        change=change,
        page_level=target,
        page_number=level,
        repeat=repeat,
    )
    users = [t for t in target.notify if t[:1] in ("U", "W")]
    groups = [t for t in target.notify if t[:1] == "S"]
    ops = _invite(users, groups)
    ops.append(("post", _post(message, metadata, to="incident")))
    for channel in (t for t in target.notify if t[:1] in ("C", "G")):
        ops.append(("post", _post(message, metadata, channel=channel)))
    if composer.policy.direct_message:  # a page reaches each paged person directly too, repeats included
        by_hand = change.kind == "escalation" and change.actor != SYSTEM_ACTOR
        page = {
            "level": level,
            "repeat": repeat,
            "by": change.actor if by_hand else None,
            "reason": change.text if by_hand else None,
        }
        dm_metadata = composer.metadata("escalation_page_dm", incident, level=level, repeat=repeat)
        if users or groups:  # one op: the relay sends each person one DM, in a group or named too
            ops.append(("dm", {"users": users, "groups": groups, "page": page, "metadata": dm_metadata}))
    return ops
