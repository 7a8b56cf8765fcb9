"""The rules an incident obeys, as configured in app.yaml. Built by bot.config; read by the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from store.rota import Schedule

PRIORITIES = ("P1", "P2", "P3", "P4")
IMPACTS = ("extensive", "significant", "moderate", "minor")
URGENCIES = ("critical", "high", "medium", "low")
ROLES = ("commander", "comms", "scribe")
SCHEDULE = "schedule:"  # an escalation target: whoever is on call of the named schedule
# The cause and resolution codes of an incident that Tocsin resolved because its alert cleared.
AUTO_RESOLVE_CODES = ("unknown", "no-action")


@dataclass(frozen=True)
class PriorityPolicy:
    response: timedelta
    resolution: timedelta
    update_every: timedelta
    pir_required: bool
    notify_leadership: bool


@dataclass(frozen=True)
class EscalationLevel:
    name: str
    notify: tuple[str, ...]  # user, user group and channel ids, and `schedule:<name>`
    after: timedelta | None = None

    @property
    def schedules(self) -> tuple[str, ...]:
        """The schedules this level pages whoever is on call of, when it pages."""
        return tuple(t.removeprefix(SCHEDULE) for t in self.notify if t.startswith(SCHEDULE))


@dataclass(frozen=True)
class AlertRoute:
    """Alerts whose labels include every `match` pair get this priority, and this category if set."""

    match: Mapping[str, str]
    priority: str
    category: str | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(name) == value for name, value in self.match.items())


@dataclass(frozen=True)
class AlertPolicy:
    """How monitoring alerts become incidents (app.yaml's `alerts`)."""

    routes: tuple[AlertRoute, ...] = ()
    default_priority: str = "P3"
    auto_resolve: bool = False  # a cleared alert resolves an incident nobody has acknowledged


@dataclass(frozen=True)
class Policy:
    incident_prefix: str = "INC"
    default_priority: str = "P3"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    announce_channel: str | None = None
    leadership_channel: str | None = None
    per_incident: bool = True
    name_template: str = "inc-{number}-{slug}"
    priorities: Mapping[str, PriorityPolicy] = field(default_factory=dict)
    priority_matrix: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    warn_at: float = 0.75
    repeat_every: timedelta = timedelta(minutes=10)
    escalation_levels: tuple[EscalationLevel, ...] = ()
    direct_message: bool = True  # a paged user also gets the page as a DM from the app
    categories: tuple[str, ...] = ("other",)
    cause_codes: tuple[str, ...] = ()
    resolution_codes: tuple[str, ...] = ()
    pir_due_after: timedelta = timedelta(days=5)
    pir_remind_every: timedelta = timedelta(days=1)
    admins: frozenset[str] = frozenset()
    tick: timedelta = timedelta(seconds=30)
    digest_channel: str | None = None  # reports.digest: weekly figures to this channel ...
    digest_cron: str | None = None  # ... on this crontab schedule, in `timezone`
    alerts: AlertPolicy = field(default_factory=AlertPolicy)
    auto_close_after: timedelta | None = None  # closure: a resolved incident closes by itself after this
    require_confirmation: bool = False  # ... but only once someone confirmed service is restored
    capture_emoji: tuple[str, ...] = ("pushpin", "memo")  # reactions that capture a message (timeline.)
    ack_emoji: str | None = "white_check_mark"  # Tocsin's reaction confirming a capture
    schedules: Mapping[str, Schedule] = field(default_factory=dict)  # on-call rotas, by name
    status_page_enabled: bool = False  # `/status`: the open incidents stakeholders may see
    status_page_public: bool = False  # ... without signing in

    def priority_for(self, impact: str, urgency: str) -> str:
        return self.priority_matrix[impact][urgency]

    def is_admin(self, user: str) -> bool:
        return user in self.admins

    def public_id(self, number: int) -> str:
        return f"{self.incident_prefix}-{number}"
