"""Private answers: domain errors turned into one clear sentence, in one place."""

from __future__ import annotations

import logging
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from handlers.render import Renderer, command_words, mention, mrkdwn
from store.errors import (
    AlreadyAcknowledged,
    AlreadyConfirmed,
    AmbiguousChannel,
    CoverTaken,
    DomainError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NoIncidentHere,
    NotFound,
    NotOnRota,
    PirRequired,
    StalePrompt,
    TooLong,
)

UNAVAILABLE = ":warning: Tocsin cannot reach its database right now, so nothing was changed. Please try again in a moment."
INTERNAL = ":warning: Something went wrong on Tocsin's side, so nothing was changed. It has been logged; please try again, or tell whoever runs Tocsin."
NO_USER = ":warning: Slack did not say who typed this command, so Tocsin did nothing."
RETIRED_BUTTON = ":information_source: This button is no longer in use, so nothing was changed. Use the buttons on the incident's pinned card, or `/incident help`."

log = logging.getLogger("tocsin.handlers")
Source = Literal["command", "click", "view"]
_SAID = {"command": "command", "click": "click", "view": "form"}


def answer(error: Exception, *, source: Source, renderer: Renderer, **facts: Any) -> str:
    """The private sentence for a command, click or form that failed: a domain error in its own words; a
    database or network fault, or anything else, as a sentence saying nothing was changed (logged with its
    traceback, since nobody else will see it). Call it from the `except` that caught `error`."""
    if isinstance(error, DomainError):
        return describe(error, renderer=renderer)
    unavailable = isinstance(error, SQLAlchemyError | OSError)
    event = f"{source}_{'failed' if unavailable else 'crashed'}"
    log.error(f"{_SAID[source]} failed", exc_info=error, extra={"event": event, **facts})
    return UNAVAILABLE if unavailable else INTERNAL


def describe(error: DomainError, *, renderer: Renderer) -> str:
    match error:
        case NotFound(ref=ref):
            return f":warning: {mrkdwn(ref)} not found."
        case NoIncidentHere():
            return ":warning: This channel is not an incident channel. Give the incident's id, e.g. `/incident INC-7 show`, or `/incident list`."
        case AmbiguousChannel(ids=found):
            return f":warning: Several incidents use this channel ({', '.join(found)}). Give the id, e.g. `/incident {found[0]} show`."
        case IllegalTransition(incident_id=incident, state=state, action=action, allowed=allowed):
            allowed_text = ", ".join(f"`{command_words(a)}`" for a in allowed) or "nothing (it is final)"
            return (
                f":no_entry: {incident} is *{state}*, so `{command_words(action)}` is not possible now. "
                f"Allowed now: {allowed_text}."
            )
        case Forbidden():
            return _forbidden(error)
        case InvalidInput(problem=problem, choices=choices):
            extra = f" Choose one of: {', '.join(f'`{c}`' for c in choices)}." if choices else ""
            return f":warning: {mrkdwn(problem[:1].upper() + problem[1:])}.{extra}"
        case TooLong(field=field, length=length, limit=limit, text=text):
            return (
                f":warning: The {field.value} is {length:,} characters long; the limit is {limit:,}. Nothing was changed. "
                f"Here is your text, to shorten and send again:\n```{mrkdwn(text)}```"
            )
        case AlreadyAcknowledged(incident_id=incident, by=by, at=at):
            return f":information_source: {incident} was already acknowledged by {mention(by)} at {renderer.when(at)}."
        case AlreadyConfirmed(incident_id=incident, by=by, at=at):
            return f":information_source: {incident} was already confirmed restored by {mention(by)} at {renderer.when(at)}."
        case StalePrompt(incident_id=incident, state="resolved", confirmed_by=by) if by:
            return (
                f":information_source: {incident} was already confirmed restored by {mention(by)}, so this "
                f"prompt is answered and nothing was changed. If it is broken again, type "
                f"`/incident {incident} still-broken` and what is wrong."
            )
        case StalePrompt(incident_id=incident, state="resolved"):
            return (
                f":information_source: This prompt belongs to an earlier resolution of {incident}: it was "
                f"reopened and resolved again since, so nothing was changed. Answer the latest prompt, or "
                f"type `/incident {incident} confirm`."
            )
        case StalePrompt(incident_id=incident, state=state):
            return f":information_source: This prompt no longer applies: {incident} is *{state}* now, so nothing was changed."
        case NotOnRota(schedule=schedule, action=action, admins=admins):
            admin = f" or an admin ({', '.join(mention(a) for a in admins)})" if admins else ""
            return f":lock: Only the people on the {mrkdwn(schedule)} rota{admin} may {action} {mrkdwn(schedule)}."
        case CoverTaken(schedule=schedule, by=by, actor=actor) if by == actor:
            return f":information_source: You already cover this stretch of {mrkdwn(schedule)}."
        case CoverTaken(schedule=schedule, by=by):
            return (
                f":information_source: {mention(by)} already covers this stretch of {mrkdwn(schedule)}. "
                f"To change that, remove their override (`/incident oncall {mrkdwn(schedule)}` lists it)."
            )
        case PirRequired(incident_id=incident, priority=priority):
            return (
                f":no_entry: {incident} is {priority}, which needs a post-incident review before it can close. "
                f"Mark it done with `/incident {incident} pir done <link>`."
            )
    return f":warning: {mrkdwn(str(error))}"


def _forbidden(error: Forbidden) -> str:
    """Names everyone who may: the owner (an action item's, or the reporter), the commander, the admins."""
    who = [f"its {error.owner_role} ({mention(error.owner)})"] if error.owner else []
    who += [
        f"the commander ({mention(error.commander)})"
        if error.commander
        else "the commander (none yet: acknowledge to become commander)"
    ]
    if error.admins:
        who.append("an admin (" + ", ".join(mention(a) for a in error.admins) + ")")
    return f":lock: Only {', '.join(who[:-1]) + ' or ' + who[-1] if len(who) > 1 else who[0]} may {error.action} {error.incident_id}."
