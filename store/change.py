"""What a use case did, for the messages that tell people about it: one type per kind of change.

Each type's `kind` is the event's name as the timeline, the templates and the Slack message metadata
know it (a public contract: it does not change). handlers/messages.py finds a change's messages by its
type.

`extra` (and, where noted, `text`, `before` or `after`) give a change's facts by the names
`templates/` and some replies read them from the one untyped change these types replaced; operators edit
templates, so those names keep working. Code reads the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from store.machine import Action
from store.models import Incident


@dataclass(frozen=True, kw_only=True)
class Change:
    """What one use case did: to which incident, by whom (a user id, a monitoring source, or Tocsin)."""

    incident: Incident
    actor: str
    kind: ClassVar[str]

    @property
    def extra(self) -> Mapping[str, Any]:
        return {}


@dataclass(frozen=True, kw_only=True)
class Declared(Change):
    kind: ClassVar[str] = "declared"


@dataclass(frozen=True, kw_only=True)
class StateChanged(Change):
    """A move along store/machine.py's transition table. `text`: what was given with it (a resolve's
    summary, a reopen's or cancel's reason)."""

    action: ClassVar[Action]
    before: str
    after: str
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class Acknowledged(StateChanged):
    action: ClassVar[Action] = Action.ACK
    kind: ClassVar[str] = Action.ACK.value


@dataclass(frozen=True, kw_only=True)
class Investigating(StateChanged):
    action: ClassVar[Action] = Action.INVESTIGATE
    kind: ClassVar[str] = Action.INVESTIGATE.value


@dataclass(frozen=True, kw_only=True)
class Identified(StateChanged):
    action: ClassVar[Action] = Action.IDENTIFY
    kind: ClassVar[str] = Action.IDENTIFY.value


@dataclass(frozen=True, kw_only=True)
class Monitoring(StateChanged):
    action: ClassVar[Action] = Action.MONITOR
    kind: ClassVar[str] = Action.MONITOR.value


@dataclass(frozen=True, kw_only=True)
class Resolved(StateChanged):
    action: ClassVar[Action] = Action.RESOLVE
    kind: ClassVar[str] = Action.RESOLVE.value


@dataclass(frozen=True, kw_only=True)
class Reopened(StateChanged):
    action: ClassVar[Action] = Action.REOPEN
    kind: ClassVar[str] = Action.REOPEN.value


@dataclass(frozen=True, kw_only=True)
class OpenAction:
    """An action item still open when its incident closed."""

    number: int
    owner: str
    text: str
    due: date


@dataclass(frozen=True, kw_only=True)
class Closed(StateChanged):
    """Closed, with the action items still open. `reason`: why, when it was not closed by hand (`auto`:
    it closed by itself)."""

    action: ClassVar[Action] = Action.CLOSE
    kind: ClassVar[str] = Action.CLOSE.value
    open_actions: tuple[OpenAction, ...] = ()
    auto: bool = False
    reason: str | None = None

    @property
    def extra(self) -> Mapping[str, Any]:
        items = [
            {"number": a.number, "owner": a.owner, "text": a.text, "due": a.due.isoformat()}
            for a in self.open_actions
        ]
        why = {"auto": self.auto, "reason": self.reason} if self.reason is not None else {}
        return {"open_actions": items, **why}


@dataclass(frozen=True, kw_only=True)
class Cancelled(StateChanged):
    action: ClassVar[Action] = Action.CANCEL
    kind: ClassVar[str] = Action.CANCEL.value


STATE_CHANGES: Mapping[Action, type[StateChanged]] = {
    kind.action: kind
    for kind in (Acknowledged, Investigating, Identified, Monitoring, Resolved, Reopened, Closed, Cancelled)
}


@dataclass(frozen=True, kw_only=True)
class PriorityChanged(Change):
    kind: ClassVar[str] = "priority"
    before: str
    after: str


@dataclass(frozen=True, kw_only=True)
class RoleAssigned(Change):
    """`role` (commander, comms or scribe) passed from `before` (None: nobody) to `after`."""

    kind: ClassVar[str] = "role"
    role: str
    before: str | None
    after: str

    @property
    def text(self) -> str:
        return self.role


@dataclass(frozen=True, kw_only=True)
class StatusUpdate(Change):
    kind: ClassVar[str] = "update"
    text: str


@dataclass(frozen=True, kw_only=True)
class Note(Change):
    kind: ClassVar[str] = "note"
    text: str


@dataclass(frozen=True, kw_only=True)
class Escalated(Change):
    """A page of escalation level `level` (1-based), by hand or by the timer; `repeat`: that level again."""

    kind: ClassVar[str] = "escalation"
    level: int
    repeat: bool
    reason: str | None = None

    @property
    def text(self) -> str | None:
        return self.reason

    @property
    def extra(self) -> Mapping[str, Any]:
        return {"level": self.level, "repeat": self.repeat}


@dataclass(frozen=True, kw_only=True)
class PirDone(Change):
    kind: ClassVar[str] = "pir"
    link: str


@dataclass(frozen=True, kw_only=True)
class PirScheduled(Change):
    kind: ClassVar[str] = "pir_scheduled"
    meeting_at: datetime
    before: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class PirDraft(Change):
    """The review's draft, rendered as Markdown."""

    kind: ClassVar[str] = "pir_draft"
    document: str


@dataclass(frozen=True, kw_only=True)
class DetectedAt(Change):
    """When the incident really began, moved to `detected_at`."""

    kind: ClassVar[str] = "detected"
    detected_at: datetime
    before: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Recoded(Change):
    """The cause and resolution codes corrected."""

    kind: ClassVar[str] = "recode"
    cause_before: str | None
    resolution_before: str | None
    cause: str | None
    resolution: str | None

    @property
    def before(self) -> str:
        return f"{self.cause_before}/{self.resolution_before}"

    @property
    def after(self) -> str:
        return f"{self.cause}/{self.resolution}"

    @property
    def extra(self) -> Mapping[str, Any]:
        return {"cause_before": self.cause_before, "resolution_before": self.resolution_before}


@dataclass(frozen=True, kw_only=True)
class ProblemLinked(Change):
    kind: ClassVar[str] = "problem"
    key: str
    before: str | None = None

    @property
    def after(self) -> str:
        return self.key


@dataclass(frozen=True, kw_only=True)
class Confirmed(Change):
    """The reporter confirmed service restored. Either the incident `waiting` (why it stays resolved), or
    `then` its closing, which the confirmation caused."""

    kind: ClassVar[str] = "confirmed"
    waiting: str | None = None
    then: Closed | None = None

    @property
    def extra(self) -> Mapping[str, Any]:
        facts: dict[str, Any] = {"waiting": self.waiting} if self.waiting else {}
        return {**facts, "then": self.then} if self.then else facts


@dataclass(frozen=True, kw_only=True)
class ActionItemChange(Change):
    """Facts of one action item: its number within the incident, owner, text and due day."""

    number: int
    owner: str
    text: str
    due: date

    @property
    def extra(self) -> Mapping[str, Any]:
        return {"action": self.number, "owner": self.owner, "text": self.text, "due": self.due.isoformat()}


@dataclass(frozen=True, kw_only=True)
class ActionAdded(ActionItemChange):
    kind: ClassVar[str] = "action"


@dataclass(frozen=True, kw_only=True)
class ActionDone(ActionItemChange):
    kind: ClassVar[str] = "action_done"


@dataclass(frozen=True, kw_only=True)
class AlertChange(Change):
    """A monitoring alert of `source` delivered again or cleared; `count`: deliveries so far; `details`:
    what to show of each alert. `refresh_card`: the card must be redrawn (no refresh is waiting)."""

    count: int
    source: str
    details: tuple[Mapping[str, Any], ...] = ()
    refresh_card: bool = False


@dataclass(frozen=True, kw_only=True)
class AlertReceived(AlertChange):
    """An alert opened the incident (`started_at`: when it began firing) or fired again: `since`
    deliveries since the last notice, `refired` after it had cleared."""

    kind: ClassVar[str] = "alert_received"
    started_at: datetime | None = None
    since: int = 0
    refired: bool = False


@dataclass(frozen=True, kw_only=True)
class AlertCounted(AlertChange):
    """An alert fired again and was counted without a notice (notices are coalesced)."""

    kind: ClassVar[str] = "alert_counted"
    since: int = 0
    refired: bool = False


@dataclass(frozen=True, kw_only=True)
class AlertResolved(AlertChange):
    """The alert cleared at `cleared_at`; `auto_resolved`: so Tocsin resolved the incident."""

    kind: ClassVar[str] = "alert_resolved"
    cleared_at: datetime
    auto_resolved: bool


@dataclass(frozen=True, kw_only=True)
class SlaChange(Change):
    """The `clock` (response or resolution) is near `due_at`, or past it."""

    clock: str
    due_at: datetime


@dataclass(frozen=True, kw_only=True)
class SlaWarning(SlaChange):
    kind: ClassVar[str] = "sla_warning"


@dataclass(frozen=True, kw_only=True)
class SlaBreached(SlaChange):
    kind: ClassVar[str] = "sla_breached"


@dataclass(frozen=True, kw_only=True)
class UpdateNudge(Change):
    kind: ClassVar[str] = "update_nudge"


@dataclass(frozen=True, kw_only=True)
class PirReminder(Change):
    """The review falls due at `due_at` (`overdue`: it has)."""

    kind: ClassVar[str] = "pir_reminder"
    due_at: datetime
    overdue: bool


@dataclass(frozen=True, kw_only=True)
class PirMeetingReminder(Change):
    kind: ClassVar[str] = "pir_meeting_reminder"
    meeting_at: datetime


@dataclass(frozen=True, kw_only=True)
class ActionItemReminder(ActionItemChange):
    kind: ClassVar[str] = "action_item_reminder"


_TIMED: Mapping[str, type[Change]] = {
    change.kind: change
    for change in (
        Escalated,
        SlaWarning,
        SlaBreached,
        UpdateNudge,
        PirReminder,
        PirMeetingReminder,
        ActionItemReminder,
    )
}


def of_timer(kind: str, incident: Incident, facts: Mapping[str, Any], *, actor: str) -> Change:
    """What a fired timer did, as its type: store/timers.py's `Fired` names it by `kind` and gives its
    `facts` by name, times as ISO 8601 text."""
    values = dict(facts)
    for key in ("due_at", "meeting_at"):
        if key in values:
            values[key] = datetime.fromisoformat(values[key])
    if kind == ActionItemReminder.kind:
        values["number"], values["due"] = values.pop("action"), date.fromisoformat(values["due"])
    return _TIMED[kind](incident=incident, actor=actor, **values)
