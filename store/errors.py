"""Domain errors. Each carries the facts a person needs to put things right."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
class InvalidInput(DomainError):
    field: str
    problem: str
    choices: list[str] | None = None


@dataclass
class TooLong(DomainError):
    field: str
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
