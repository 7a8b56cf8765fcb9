"""The incident lifecycle as data: (state, action) -> state, and who may take each action."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from store.models import OPEN_STATES, State


class Action(enum.StrEnum):
    ACK = "ack"
    INVESTIGATE = "investigate"
    IDENTIFY = "identify"
    MONITOR = "monitor"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    CLOSE = "close"
    CANCEL = "cancel"


S, A = State, Action

TRANSITIONS: Mapping[tuple[State, Action], State] = MappingProxyType(
    {
        (S.TRIAGE, A.ACK): S.INVESTIGATING,
        (S.INVESTIGATING, A.IDENTIFY): S.IDENTIFIED,
        (S.IDENTIFIED, A.INVESTIGATE): S.INVESTIGATING,
        (S.IDENTIFIED, A.MONITOR): S.MONITORING,
        (S.MONITORING, A.INVESTIGATE): S.INVESTIGATING,
        (S.TRIAGE, A.RESOLVE): S.RESOLVED,
        (S.INVESTIGATING, A.RESOLVE): S.RESOLVED,
        (S.IDENTIFIED, A.RESOLVE): S.RESOLVED,
        (S.MONITORING, A.RESOLVE): S.RESOLVED,
        (S.RESOLVED, A.REOPEN): S.INVESTIGATING,
        (S.RESOLVED, A.CLOSE): S.CLOSED,
        (S.TRIAGE, A.CANCEL): S.CANCELLED,
        (S.INVESTIGATING, A.CANCEL): S.CANCELLED,
    }
)
# What each action does to the incident besides moving it is store/service.py's EFFECTS, one entry an action.

# Actions only the incident's commander or an admin may take.
COMMANDER_ACTIONS = frozenset({A.RESOLVE, A.CLOSE, A.CANCEL, A.REOPEN})

# The status words `/incident status <word>` accepts, and the action each one means.
STATUS_ACTIONS: Mapping[str, Action] = MappingProxyType(
    {"investigating": A.INVESTIGATE, "identified": A.IDENTIFY, "monitoring": A.MONITOR}
)

# Operations that change no state, and the states they are allowed in.
PRIORITY_STATES = OPEN_STATES
ASSIGN_STATES = OPEN_STATES | {S.RESOLVED}
UPDATE_STATES = OPEN_STATES | {S.RESOLVED}
ESCALATE_STATES = OPEN_STATES
PIR_STATES = frozenset({S.RESOLVED, S.CLOSED})


def allowed_actions(state: State) -> list[Action]:
    return [action for (origin, action) in TRANSITIONS if origin == state]


def target(state: State, action: Action) -> State | None:
    return TRANSITIONS.get((state, action))
