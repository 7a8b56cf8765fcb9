"""Domain errors. Each carries the facts a person needs to put things right."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Field(StrEnum):
    """What a refusal of input names; the value is the words a person reads ("The cause code is ...")."""

    TITLE = "title"
    DESCRIPTION = "description"
    CATEGORY = "category"
    IMPACT = "impact"
    URGENCY = "urgency"
    PRIORITY = "priority"
    DETECTED = "detected"
    SUMMARY = "summary"
    CAUSE_CODE = "cause code"
    RESOLUTION_CODE = "resolution code"
    REASON = "reason"
    ROLE = "role"
    UPDATE = "update"
    NOTE = "note"
    ESCALATION = "escalation"
    LINK = "link"
    WHEN = "when"
    DUE = "due"
    ACTION = "action"
    RECODE = "recode"
    PROBLEM = "problem"
    PROBLEM_KEY = "problem key"
    USER = "user"
    INCIDENT = "incident"
    SCHEDULE = "schedule"
    OVERRIDE = "override"
    COVER = "cover request"
    COMMAND = "command"  # a command's words did not fit any of its forms (handlers/grammar.py)


class DomainError(Exception):
    """Base of every refusal the store makes; nothing was changed."""


@dataclass
class NotFound(DomainError):
    ref: str


@dataclass
class NoIncidentHere(DomainError):
    """A command aimed at an incident was typed outside an incident channel, without an id."""


@dataclass
class AmbiguousChannel(DomainError):
    ids: list[str]


@dataclass
class IllegalTransition(DomainError):
    incident_id: str
    state: str
    action: str
    allowed: list[str]


@dataclass
class Forbidden(DomainError):
    incident_id: str
    action: str
    commander: str | None
    admins: list[str]
    owner: str | None = None  # someone else who may: an action item's owner, an incident's reporter
    owner_role: str = "owner"


@dataclass
class NotOnRota(DomainError):
    """Only a schedule's participants and the admins may change who is on call of it."""

    schedule: str
    action: str
    admins: list[str]


@dataclass
class CoverTaken(DomainError):
    """A cover request someone already took: `by` covers it (perhaps the person asking again)."""

    schedule: str
    by: str
    actor: str


@dataclass
class InvalidInput(DomainError):
    field: Field
    problem: str
    choices: list[str] | None = None


@dataclass
class TooLong(DomainError):
    field: Field
    length: int
    limit: int
    text: str


@dataclass
class AlreadyAcknowledged(DomainError):
    incident_id: str
    by: str | None
    at: datetime | None


@dataclass
class PirRequired(DomainError):
    incident_id: str
    priority: str


@dataclass
class AlreadyConfirmed(DomainError):
    incident_id: str
    by: str | None
    at: datetime | None


@dataclass
class StalePrompt(DomainError):
    """A click on a "Confirm restored / Still broken" prompt that no longer applies: the incident left
    `resolved`, was resolved again since (the prompt belongs to resolution `prompt`, the incident is at
    `resolution`), or its restoration was already confirmed."""

    incident_id: str
    state: str
    prompt: int
    resolution: int
    confirmed_by: str | None = None
