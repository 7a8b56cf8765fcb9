"""What each domain change tells Slack: messages written to the outbox in the caller's transaction."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import ids, text
from handlers.render import Message, Renderer, mention, truncate_text
from store import home_views, outbox, paging
from store.change import (
    STATE_CHANGES,
    Acknowledged,
    ActionDone,
    ActionItemChange,
    ActionItemReminder,
    AlertChange,
    AlertReceived,
    AlertResolved,
    Cancelled,
    Change,
    Closed,
    Confirmed,
    Declared,
    Escalated,
    Identified,
    Investigating,
    Monitoring,
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
    SlaChange,
    StateChanged,
    StatusUpdate,
    UpdateNudge,
)
from store.closure import asks_reporter
from store.models import Incident
from store.operations import (
    CreateChannel,
    Dm,
    Invite,
    Operation,
    Page,
    Pin,
    Post,
    Refresh,
    Target,
    Topic,
    Upload,
)
from store.policy import SCHEDULE, Policy
from store.timeline import SYSTEM_ACTOR
from store.timers import clock_due


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
        number = incident.escalation_level if self.level(incident.escalation_level) else 1
        return [mention(target) for target in self.targets(incident, number)]

    def targets(self, incident: Incident, number: int) -> list[str]:
        """The ids level `number` paged: its users, groups and channels, and for each of its schedules
        whoever was on call when it paged (store/paging.py)."""
        level = self.level(number)
        if level is None:
            return []
        fixed = [target for target in level.notify if not target.startswith(SCHEDULE)]
        return list(dict.fromkeys([*fixed, *paging.paged(incident, number)]))

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

    def page_dm(self, incident: Incident, page: Page) -> Message:
        """The page as a DM from the app, linking the incident channel (rendered when it is delivered,
        once the channel exists) with the facts the page was planned with."""
        return self.render(
            "escalation_page_dm.json.j2", incident, page=page, page_level=self.level(page.level)
        )

    def card(self, incident: Incident) -> Message:
        return self.renderer.message("incident_card.json.j2", **self.context(incident))

    def announcement(self, incident: Incident) -> Message:
        return self.renderer.message("incident_announcement.json.j2", **self.context(incident))

    def render(self, name: str, incident: Incident, **extra: Any) -> Message:
        return self.renderer.message(name, **self.context(incident, **extra))


async def publish(session: AsyncSession, change: Change, *, composer: Composer, now: datetime) -> None:
    """Write the outbox rows that tell Slack about `change`, in the caller's transaction."""
    incident = change.incident
    ops = plan(change, composer=composer)
    await outbox.enqueue_all(
        session, ops, now=now, incident_number=incident.number, priority=incident.priority
    )
    if isinstance(change, _HOME_SHOWS) and not isinstance(change, ActionItemReminder):
        await home_views.changed(session, now=now)


# What the App Home tab shows changes with these: an incident's state, priority, roles and SLA clocks,
# and action items. Notes, updates and reminders leave it as it was, and spare every such write a read
# of who has the tab open.
_HOME_SHOWS = (
    Declared,
    StateChanged,
    PriorityChanged,
    RoleAssigned,
    SlaChange,
    ActionItemChange,
    Confirmed,
)


def plan(change: Change, *, composer: Composer) -> list[Operation]:
    """The operations that tell Slack about `change`, in order: its type's own (from _PLANNERS, the
    nearest of its classes; none for a type with no message), then the edits its type asks of the card,
    the announcement and the topic (none for Declared and Confirmed, which plan their own)."""
    planner = next((_PLANNERS[cls] for cls in type(change).__mro__ if cls in _PLANNERS), None)
    return [*(planner(change, composer) if planner else []), *_follow_ups(change, composer.policy)]


def _follow_ups(change: Change, policy: Policy) -> list[Operation]:
    ops: list[Operation] = []
    if isinstance(change, _REFRESH_CARD) or (isinstance(change, AlertChange) and change.refresh_card):
        ops.append(Refresh("card"))
    if isinstance(change, _REFRESH_ANNOUNCEMENT) and policy.announce_channel:
        ops.append(Refresh("announcement"))
    if policy.per_incident and (
        isinstance(change, _RETOPIC) or (isinstance(change, RoleAssigned) and change.role == "commander")
    ):
        ops.append(Topic())
    return ops


def _post(
    message: Message,
    metadata: dict[str, Any],
    *,
    channel: str | None = None,
    thread: Literal["announcement"] | None = None,
    save_as: Target | None = None,
    urgent: bool = False,
) -> Post:
    """A message as planned now; `channel` None: the incident's channel. `urgent`: a page, an SLA
    breach or a leadership notice, delivered before the incident's other messages and those of lower
    priorities."""
    return Post(
        channel=channel,
        text=message.text,
        blocks=message.blocks,
        metadata=metadata,
        thread=thread,
        save_as=save_as,
        urgent=urgent,
    )


def _declared(change: Declared, composer: Composer) -> list[Operation]:
    """The channel, its people and topic, the pinned card, the announcement, leadership and the page."""
    incident, policy = change.incident, composer.policy
    ops: list[Operation] = []
    if policy.per_incident:
        name = channel_name(
            policy.name_template, number=incident.number, title=incident.title, prefix=policy.incident_prefix
        )
        reporter = [] if incident.alert_source else [incident.reporter]  # a monitoring source is no user
        ops += [CreateChannel(name), *_invite(reporter + _role_holders(incident)), Topic()]
    declared = composer.metadata("incident_declared", incident)
    ops += [Post(render="card", save_as="card", metadata=declared), Pin("card")]
    if policy.announce_channel:
        ops.append(
            Post(
                channel=policy.announce_channel,
                render="announcement",
                save_as="announcement",
                metadata=declared,
            )
        )
    if policy.priorities[incident.priority].notify_leadership:
        ops += _leadership(change, composer)
    if incident.escalation_level:
        ops += _page(change, composer, level=1, repeat=False)
    return ops


def _escalated(change: Escalated, composer: Composer) -> list[Operation]:
    return _page(change, composer, level=change.level, repeat=change.repeat)


def _action_notice(change: ActionItemChange, composer: Composer) -> list[Operation]:
    """An action item added or done: a template of the event's name."""
    event = "action_item_done" if isinstance(change, ActionDone) else "action_item_added"
    facts = {"action": change.number, "owner": change.owner, "due": change.due.isoformat()}
    message = composer.render(f"{event}.json.j2", change.incident, change=change, text=change.text, **facts)
    return [_post(message, composer.metadata(event, change.incident, **facts))]


def _meeting_scheduled(change: PirScheduled, composer: Composer) -> list[Operation]:
    event = "pir_meeting_scheduled"
    message = composer.render(
        f"{event}.json.j2", change.incident, change=change, meeting_at=change.meeting_at
    )
    metadata = composer.metadata(event, change.incident, meeting_at=change.meeting_at.isoformat())
    return [_post(message, metadata)]


def _review_draft(change: PirDraft, composer: Composer) -> list[Operation]:
    """The post-incident review's draft, as a Markdown file in the incident channel."""
    incident, public_id = change.incident, composer.public_id(change.incident)
    comment = composer.renderer.text("pir_uploaded.txt.j2", **composer.context(incident, change=change))
    upload = Upload(
        channel=None,
        filename=f"{public_id.lower()}-post-incident-review.md",
        title=f"Post-incident review: {public_id} {text.to_plain(incident.title)}"[:250],
        content=change.document,
        comment=comment,
    )
    return [upload]


def _status_update(change: StatusUpdate, composer: Composer) -> list[Operation]:
    """A status update, in the incident channel and in the announcement's thread."""
    incident, announce = change.incident, composer.policy.announce_channel
    metadata = composer.metadata("incident_status_update", incident)
    message = composer.render("incident_status_update.json.j2", incident, change=change)
    ops: list[Operation] = [_post(message, metadata)]
    if announce:
        ops.append(_post(message, metadata, channel=announce, thread="announcement"))
    return ops


def _confirmed(change: Confirmed, composer: Composer) -> list[Operation]:
    """The reporter confirmed the service restored; when that closed the incident, the closing follows."""
    message = composer.render("incident_confirmed.json.j2", change.incident, change=change)
    metadata = composer.metadata("incident_confirmed", change.incident, by=change.actor)
    post = _post(message, metadata)
    if change.then:  # the confirmation closed it: the closing refreshes the card and prompt
        return [post, *plan(change.then, composer=composer)]
    return [post, *_settle_prompt(change, composer), Refresh("card")]


def _recoded(change: Recoded, composer: Composer) -> list[Operation]:
    message = composer.render("incident_recoded.json.j2", change.incident, change=change)
    metadata = composer.metadata(
        "incident_recoded", change.incident, **{"from": change.before, "to": change.after}
    )
    return [_post(message, metadata), Refresh("card")]


Moved = StateChanged | PriorityChanged | RoleAssigned


def _state_post(change: Moved, composer: Composer, **facts: Any) -> Post:
    """The message a move of state, priority or role posts in the incident channel; its metadata
    carries `facts`, by default where the change went from and to."""
    event = _STATE_EVENTS[type(change)]
    message = composer.render(f"{event}.json.j2", change.incident, change=change)
    facts = facts or {"from": change.before, "to": change.after}
    return _post(message, composer.metadata(event, change.incident, **facts))


def _state_changed(change: StateChanged, composer: Composer) -> list[Operation]:
    return [_state_post(change, composer)]


def _acknowledged(change: Acknowledged, composer: Composer) -> list[Operation]:
    incident = change.incident
    made_commander = incident.commander == change.actor  # acknowledging made them commander
    # A person a page named was invited with it (conversations.invite is Tier 3: not again).
    paged = {user for n in range(1, incident.escalation_level + 1) for user in _named(composer, incident, n)}
    invite = made_commander and change.actor not in paged
    return [*(_invite([change.actor]) if invite else []), _state_post(change, composer)]


def _named(composer: Composer, incident: Incident, level: int) -> list[str]:
    return composer.targets(incident, level)


def _role_assigned(change: RoleAssigned, composer: Composer) -> list[Operation]:
    # The new holder is in the channel before the message naming them.
    invite = _invite([change.after] if change.after else [])
    return [*invite, _state_post(change, composer, role=change.role, user=change.after)]


def _resolved(change: Resolved, composer: Composer) -> list[Operation]:
    """Resolved; a reporter who is a person is asked to confirm the service is restored."""
    incident = change.incident
    ops: list[Operation] = [_state_post(change, composer)]
    if asks_reporter(incident):
        request = composer.render(
            "closure_confirmation_requested.json.j2", incident, change=change, outcome=None
        )
        metadata = composer.metadata("closure_confirmation_requested", incident, reporter=incident.reporter)
        ops.append(_post(request, metadata, save_as="confirmation"))
    return ops


def _reopened(change: Reopened, composer: Composer) -> list[Operation]:
    return [_state_post(change, composer), *_settle_prompt(change, composer)]


def _closed(change: Closed, composer: Composer) -> list[Operation]:
    facts = {
        "from": change.before,
        "to": change.after,
        "auto": change.auto,
        "reason": change.reason or "closed by hand",
    }
    return [_state_post(change, composer, **facts), *_settle_prompt(change, composer)]


def _priority_changed(change: PriorityChanged, composer: Composer) -> list[Operation]:
    ops: list[Operation] = [_state_post(change, composer)]
    if _raised_to_leadership(change, composer.policy):
        ops += _leadership(change, composer)
    return ops


def _role_holders(incident: Incident) -> list[str]:
    return [user for user in (incident.commander, incident.comms, incident.scribe) if user]


def _invite(users: list[str], groups: list[str] | None = None) -> list[Operation]:
    """Invite people into the incident channel before a message that mentions them: Slack notifies a
    mentioned user only if they are a member. User groups are expanded by the relay, when it delivers.
    The relay leaves out channels Tocsin did not create (it pulls nobody into a shared channel)."""
    people = list(dict.fromkeys(u for u in users if u[:1] in ("U", "W")))
    groups = list(dict.fromkeys(groups or []))
    if not people and not groups:
        return []
    return [Invite(users=people, groups=groups)]


def _settle_prompt(change: Reopened | Closed | Confirmed, composer: Composer) -> list[Operation]:
    """The "Confirm restored / Still broken" prompt, edited to say what became of it, without buttons."""
    incident = change.incident
    if not asks_reporter(incident):  # no prompt was posted
        return []
    message = composer.render(
        "closure_confirmation_requested.json.j2", incident, change=change, outcome=change.kind
    )
    metadata = composer.metadata("closure_confirmation_requested", incident, reporter=incident.reporter)
    return [Refresh("confirmation", text=message.text, blocks=message.blocks, metadata=metadata)]


Reminder = SlaChange | UpdateNudge | PirReminder | PirMeetingReminder | ActionItemReminder


def _reminder(change: Reminder, composer: Composer) -> list[Operation]:
    """SLA warnings and breaches, update nudges and PIR reminders, from the scheduler."""
    incident = change.incident
    facts, payload = _reminder_facts(change)
    message = composer.render(f"{change.kind}.json.j2", incident, who=_reminded(change, composer), **facts)
    metadata = composer.metadata(change.kind, incident, **payload)
    breach = isinstance(change, SlaBreached)
    ops: list[Operation] = [_post(message, metadata, urgent=breach)]
    leadership = composer.policy.leadership_channel
    if breach and leadership and composer.policy.priorities[incident.priority].notify_leadership:
        ops.append(_post(message, metadata, channel=leadership, urgent=True))
    return ops


def _reminder_facts(change: Reminder) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a reminder's template shows, and what its metadata carries."""
    match change:
        case SlaChange(clock=clock, due_at=due_at):
            return {"clock": clock, "due_at": due_at}, {"clock": clock, "due_at": due_at.isoformat()}
        case PirReminder(due_at=due_at, overdue=overdue):
            return {"due_at": due_at, "overdue": overdue}, {"due_at": due_at.isoformat()}
        case PirMeetingReminder(meeting_at=meeting_at):
            return {"meeting_at": meeting_at}, {"meeting_at": meeting_at.isoformat()}
        case ActionItemReminder(number=number, owner=owner, text=said, due=due):
            shown = {"action": number, "owner": owner, "text": said, "due": due.isoformat()}
            return shown, {"action": number, "due": due.isoformat()}
    return {}, {}


def _reminded(change: Reminder, composer: Composer) -> list[str]:
    """Whom a reminder mentions: an action item's owner; everyone in the review meeting; else the
    responders."""
    incident = change.incident
    if isinstance(change, ActionItemReminder):
        return [mention(change.owner)]
    if isinstance(change, PirMeetingReminder):
        reporter = None if incident.alert_source else incident.reporter
        people = [incident.commander, incident.comms, incident.scribe, reporter]
        return [mention(p) for p in dict.fromkeys(p for p in people if p)]
    return composer.responders(incident)


def _alert_notice(change: AlertReceived | AlertResolved, composer: Composer) -> list[Operation]:
    """A monitoring alert fired again (coalesced by store/alerts.py) or cleared."""
    incident = change.incident
    fields: dict[str, Any] = {"count": change.count, "source": change.source}
    facts: dict[str, Any] = {**fields, "details": change.details}
    who: list[str] = []
    if isinstance(change, AlertResolved):
        fields["auto_resolved"] = change.auto_resolved
        who = [] if change.auto_resolved else composer.responders(incident)
        facts |= {"cleared_at": change.cleared_at, "auto_resolved": change.auto_resolved}
        facts |= {"since": 0, "refired": False, "started_at": None}
    else:
        facts |= {"since": change.since, "refired": change.refired, "started_at": change.started_at}
    message = composer.render(f"{change.kind}.json.j2", incident, change=change, who=who, **facts)
    return [_post(message, composer.metadata(change.kind, incident, **fields))]


def _raised_to_leadership(change: PriorityChanged, policy: Policy) -> bool:
    before, after = change.before or "P4", change.after or "P4"
    return after < before and policy.priorities[after].notify_leadership


def _leadership(change: Declared | PriorityChanged, composer: Composer) -> list[Operation]:
    channel = composer.policy.leadership_channel
    if not channel:
        return []
    incident = change.incident
    message = composer.render("incident_leadership_notice.json.j2", incident, change=change)
    metadata = composer.metadata("incident_leadership_notice", incident)
    return [_post(message, metadata, channel=channel, urgent=True)]


def _page(change: Declared | Escalated, composer: Composer, *, level: int, repeat: bool) -> list[Operation]:
    """A page: its people invited, then the message in the incident channel and the level's channels,
    and (with escalation.direct_message) one DM op for everyone it names."""
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
        page_targets=composer.targets(incident, level),
        repeat=repeat,
    )
    paged = composer.targets(incident, level)
    users = [t for t in paged if t[:1] in ("U", "W")]
    groups = [t for t in paged if t[:1] == "S"]
    ops = [*_invite(users, groups), _post(message, metadata, urgent=True)]
    ops += [_post(message, metadata, channel=t, urgent=True) for t in paged if t[:1] in ("C", "G")]
    # A page reaches each paged person directly too, repeats included: one op, one DM each, in a group
    # or named too.
    if composer.policy.direct_message and (users or groups):
        by_hand = isinstance(change, Escalated) and change.actor != SYSTEM_ACTOR
        page = Page(
            level=level,
            repeat=repeat,
            by=change.actor if by_hand else None,
            reason=change.reason if isinstance(change, Escalated) and by_hand else None,
        )
        dm_metadata = composer.metadata("escalation_page_dm", incident, level=level, repeat=repeat)
        ops.append(Dm(users=users, groups=groups, page=page, metadata=dm_metadata))
    return ops


_STATE_CHANGES = tuple(STATE_CHANGES.values())
# Changes that alter what the card and the announcement show.
_REFRESH_ANNOUNCEMENT = (*_STATE_CHANGES, PriorityChanged, RoleAssigned, PirDone, SlaBreached)
_REFRESH_CARD = (*_REFRESH_ANNOUNCEMENT, Escalated, ProblemLinked, PirScheduled)
# Changes that can alter the channel topic (state, priority; a role change when it names the commander).
# The relay renders the topic when it delivers the op and calls Slack only if the text differs from the
# one it last set.
_RETOPIC = (*_STATE_CHANGES, PriorityChanged)
# The event (its template's and its metadata's name) of each move of state, priority or role.
_STATE_EVENTS: Mapping[type[Change], str] = {
    Acknowledged: "incident_acknowledged",
    Investigating: "incident_status_changed",
    Identified: "incident_status_changed",
    Monitoring: "incident_status_changed",
    Resolved: "incident_resolved",
    Reopened: "incident_reopened",
    Closed: "incident_closed",
    Cancelled: "incident_cancelled",
    PriorityChanged: "incident_priority_changed",
    RoleAssigned: "incident_role_assigned",
}
# What each type of change posts, edits or asks, found by its nearest class here; a type with none here
# (a note, a detection time, a problem link, an alert counted without a notice) posts nothing of its own.
_PLANNERS: Mapping[type[Change], Callable[..., list[Operation]]] = {
    Declared: _declared,
    Escalated: _escalated,
    SlaChange: _reminder,
    UpdateNudge: _reminder,
    PirReminder: _reminder,
    PirMeetingReminder: _reminder,
    ActionItemReminder: _reminder,
    AlertReceived: _alert_notice,
    AlertResolved: _alert_notice,
    ActionItemChange: _action_notice,
    PirScheduled: _meeting_scheduled,
    PirDraft: _review_draft,
    StatusUpdate: _status_update,
    Confirmed: _confirmed,
    Recoded: _recoded,
    StateChanged: _state_changed,
    Acknowledged: _acknowledged,
    Resolved: _resolved,
    Reopened: _reopened,
    Closed: _closed,
    PriorityChanged: _priority_changed,
    RoleAssigned: _role_assigned,
}
