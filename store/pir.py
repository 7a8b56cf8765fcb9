"""The facts a post-incident review starts from: milestones, SLA results, timeline, actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from store import actions, service, timers
from store.errors import IllegalTransition
from store.machine import allowed_actions
from store.models import ActionItem, Incident, State, TimelineEntry
from store.policy import Policy


@dataclass(frozen=True)
class Milestone:
    name: str
    at: datetime
    since_declared: timedelta | None  # None for the declaration itself


@dataclass(frozen=True)
class SlaResult:
    clock: str  # response | resolution
    target: timedelta
    actual: timedelta | None  # None: the clock never stopped
    due_at: datetime
    breached_at: datetime | None

    @property
    def met(self) -> bool | None:
        return None if self.actual is None else self.actual <= self.target


@dataclass
class PirFacts:
    incident: Incident
    milestones: list[Milestone]
    sla: list[SlaResult]
    timeline: list[TimelineEntry]  # as edited, removed entries left out, in time order (store/timeline.py)
    updates: list[TimelineEntry]
    open_actions: list[ActionItem]
    actions: list[ActionItem] = field(default_factory=list)


def milestones(incident: Incident) -> list[Milestone]:
    found = []
    if incident.detected_at is not None:
        found.append(Milestone("Detected", incident.detected_at, incident.detected_at - incident.declared_at))
    for name, at in (
        ("Declared", incident.declared_at),
        ("Acknowledged", incident.acknowledged_at),
        ("Identified", incident.identified_at),
        ("Mitigated", incident.mitigated_at),
        ("Resolved", incident.resolved_at),
        ("Closed", incident.closed_at),
        ("Cancelled", incident.cancelled_at),
    ):
        if at is not None:
            found.append(Milestone(name, at, None if name == "Declared" else at - incident.declared_at))
    return found


def sla_results(incident: Incident, *, policy: Policy) -> list[SlaResult]:
    targets = policy.priorities[incident.priority]
    paused = timedelta(seconds=incident.resolution_paused_seconds or 0)
    response = incident.acknowledged_at - incident.declared_at if incident.acknowledged_at else None
    resolution = incident.resolved_at - incident.declared_at - paused if incident.resolved_at else None
    return [
        SlaResult(
            "response",
            targets.response,
            response,
            timers.clock_due(incident, "response", policy=policy)[1],
            incident.response_breached_at,
        ),
        SlaResult(
            "resolution",
            targets.resolution,
            resolution,
            timers.clock_due(incident, "resolution", policy=policy)[1],
            incident.resolution_breached_at,
        ),
    ]


async def gather(session: AsyncSession, incident: Incident, *, policy: Policy) -> PirFacts:
    """Everything the review document shows; refused until the incident is resolved."""
    if incident.state not in (State.RESOLVED, State.CLOSED):
        raise IllegalTransition(
            incident_id=policy.public_id(incident.number),
            state=incident.state.value,
            action="pir",
            allowed=[a.value for a in allowed_actions(incident.state)],
        )
    entries = await service.timeline(session, incident, limit=5000)
    items = await actions.of_incident(session, incident)
    return PirFacts(
        incident=incident,
        milestones=milestones(incident),
        sla=sla_results(incident, policy=policy),
        timeline=entries,
        updates=[e for e in entries if e.kind == "update"],
        open_actions=[i for i in items if i.done_at is None],
        actions=items,
    )
