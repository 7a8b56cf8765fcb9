"""`/incident <subcommand>`: find the command in the table (GRAMMAR, at the end), read its arguments
(handlers/grammar.py), run one use case, answer privately in the ack."""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import flows, oncall, render, reports, text, views
from handlers.deps import Deps, names_in_time
from handlers.flows import UseCaseContext
from handlers.grammar import PRIORITY_SPAN, Arg, Call, Command, Form, Grammar, Invocation, Kind, Who, dispatch
from handlers.messages import Composer
from handlers.render import Message, mrkdwn
from handlers.replies import NO_USER, answer
from store import actions, closure, knowledge, metrics, pir, service, statuspage, timeline
from store.change import Change, Closed, PirDraft
from store.machine import STATUS_ACTIONS, Action
from store.models import Incident
from store.policy import PRIORITIES, ROLES, Policy

NAMES_WAIT = 1.0  # seconds the timeline waits for display names (it answers in the ack)
WINDOWS = ("7d", "30d", "90d")  # what `stats` reports over

# What a subcommand's `run` is given: what was typed, who acts where, and the dependencies; it answers
# with a message, or None when a modal answers.
Handler = Callable[[Invocation, UseCaseContext, Deps], Awaitable[Message | None]]


def parse(command: dict[str, Any], *, prefix: str) -> Invocation:
    """`[INC-7] verb rest` or `verb [INC-7] rest`."""
    words = text.from_command(command.get("text")).split(maxsplit=1)
    ref_pattern = re.compile(rf"{re.escape(prefix)}-\d+", re.IGNORECASE)
    ref = None
    if words and ref_pattern.fullmatch(words[0]):
        ref, words = words[0].upper(), (words[1].split(maxsplit=1) if len(words) > 1 else [])
    verb = words[0].lower() if words else ("show" if ref else "help")
    rest = words[1].strip() if len(words) > 1 else ""
    if ref is None and rest:
        first, _, remainder = rest.partition(" ")
        if ref_pattern.fullmatch(first):
            ref, rest = first.upper(), remainder.strip()
    return Invocation(
        user=command["user_id"],
        channel=command.get("channel_id", ""),
        verb=verb,
        rest=rest,
        ref=ref,
        trigger_id=command.get("trigger_id", ""),
        response_url=command.get("response_url", ""),
    )


async def on_command_incident(
    ack: Callable[..., Awaitable[None]], command: dict[str, Any], deps: Deps
) -> None:
    if not isinstance(command.get("user_id"), str) or not command["user_id"]:
        await ack(text=NO_USER, response_type="ephemeral")  # Slack always says who; a made-up payload
        return
    invocation = parse(command, prefix=deps.policy.incident_prefix)
    ctx = UseCaseContext.of(deps, actor=invocation.user, channel=invocation.channel)
    handler = HANDLERS.get(invocation.verb)
    try:
        reply = await handler(invocation, ctx, deps) if handler else _unknown(invocation, deps)
    except Exception as error:  # the person must hear that nothing happened, whatever went wrong
        reply = Message(answer(error, source="command", renderer=deps.renderer, verb=invocation.verb))
    if reply is None:
        await ack()
    else:
        await ack(text=reply.text, blocks=reply.blocks or None, response_type="ephemeral")


def _unknown(invocation: Invocation, deps: Deps) -> Message:
    """The mistyped word, shown as typed, and the closest command, above the help."""
    guess = difflib.get_close_matches(invocation.verb, HANDLERS, n=1, cutoff=0.6)
    return deps.renderer.message(
        "help.json.j2",
        prefix=deps.policy.incident_prefix,
        unknown=invocation.verb,
        guess=guess[0] if guess else None,
        commands=GRAMMAR,
    )


def _ok(text: str) -> Message:
    return Message(f":white_check_mark: {text}")


# The handlers the table names: each is given the Call and its form's arguments by name.


async def do_help(call: Call) -> Message:
    return call.message("help.json.j2", prefix=call.deps.policy.incident_prefix, commands=GRAMMAR)


async def do_declare_form(call: Call) -> None:
    call.open_form(views.declare_view(call.deps, origin_channel=call.invocation.channel))


async def do_declare(call: Call, *, priority: str | None, title: str) -> Message:
    typed = call.invocation
    change = await flows.declare(
        call.deps, title=title, priority=priority, reporter=typed.user, origin_channel=typed.channel
    )
    opened = (
        "an incident channel is being opened and you will be invited"
        if call.deps.policy.per_incident
        else "the card is posted here"
    )
    return _ok(f"Declared *{call.public_id(change)}* [{change.incident.priority}]: {opened}.")


def _transition(action: Action) -> Callable[..., Awaitable[Message]]:
    """The handler of a verb that is one action of the transition table (`ack`, `close`, `reopen`...)."""

    async def handler(call: Call, **given: str) -> Message:
        return await _move(call, action, **given)

    return handler


async def _move(call: Call, action: Action, **given: str) -> Message:
    change = await call.change(service.apply, action, **given)
    reply = f"{call.public_id(change)} is now *{change.after}*."
    if isinstance(change, Closed) and (count := len(change.open_actions)):
        reply += f" :warning: It still has {count} open action item{'s' if count > 1 else ''}; they stay tracked and reminded: `/incident actions`."
    return _ok(reply)


async def do_status(call: Call, *, status: str) -> Message:
    return await _move(call, STATUS_ACTIONS[status])


async def do_resolve_form(call: Call) -> None:
    incident = await call.incident()
    views.check_resolvable(incident, actor=call.invocation.user, deps=call.deps)
    call.open_form(views.resolve_view(call.deps, incident))


async def do_resolve(call: Call, *, summary: str, cause: str, resolution: str) -> Message:
    change = await call.change(
        service.apply, Action.RESOLVE, summary=summary, cause=cause, resolution=resolution
    )
    return _ok(f"{call.public_id(change)} is resolved.")


async def do_confirm(call: Call) -> Message:
    change = await call.change(closure.confirm)
    if change.then is not None:
        return _ok(f"Thanks: {call.public_id(change)} is confirmed restored and now closed.")
    return _ok(f"Thanks: {call.public_id(change)} is confirmed restored; it closes once {change.waiting}.")


async def do_still_broken(call: Call, *, reason: str) -> Message:
    change = await call.change(closure.still_broken, reason)
    return _ok(f"{call.public_id(change)} is reopened and back to *investigating*.")


async def do_recode(call: Call, *, cause: str | None, resolution: str | None) -> Message:
    change = await call.change(closure.recode, cause=cause, resolution=resolution)
    incident = change.incident
    return _ok(
        f"{call.public_id(change)} now has cause `{incident.cause_code}` and resolution `{incident.resolution_code}`."
    )


async def do_priority(call: Call, *, priority: str) -> Message:
    change = await call.change(service.change_priority, priority)
    return _ok(f"{call.public_id(change)} is now {change.after}.")


async def do_assign(call: Call, *, role: str, person: str) -> Message:
    change = await call.change(service.assign, role, person)
    return _ok(f"<@{change.after}> is now {change.role} of {call.public_id(change)}.")


async def do_update_form(call: Call) -> None:
    call.open_form(views.update_view(call.deps, await call.incident()))


async def do_update(call: Call, *, text: str) -> Message:
    change = await call.change(service.post_update, text)
    return _ok(f"Update posted to {call.public_id(change)}'s channel and status thread.")


async def do_note(call: Call, *, text: str) -> Message:
    change = await call.change(service.add_note, text)
    return _ok(f"Noted in {call.public_id(change)}'s timeline.")


async def do_escalate(call: Call, *, reason: str) -> Message:
    change = await call.change(service.escalate, reason=reason)
    level = call.deps.composer.level(change.level)
    again = " again (it is the last level)" if change.repeat else ""
    return _ok(
        f"Paging level {change.level} ({level.name if level else '?'}){again} for {call.public_id(change)}."
    )


async def do_pir(call: Call) -> Message:
    names = await _review_names(call)
    change = await call.change(_pir_draft, names=names, composer=call.deps.composer)
    return _ok(f"The review draft of {call.public_id(change)} is being uploaded to its channel.")


async def do_pir_schedule(call: Call, *, when: str) -> Message:
    change = await call.change(service.schedule_pir, when)
    at = call.deps.renderer.when(change.incident.pir_meeting_at)
    return _ok(
        f"Review meeting for {call.public_id(change)} set for {at}; participants are reminded an hour before."
    )


async def do_pir_done(call: Call, *, link: str) -> Message:
    change = await call.change(service.pir_done, link)
    return _ok(f"Post-incident review of {call.public_id(change)} marked done.")


async def _review_names(call: Call) -> dict[str, str]:
    """The display names of everyone the review names, asked of Slack before its transaction opens."""
    async with call.reading() as (session, incident):
        facts = await pir.gather(session, incident, policy=call.deps.policy)
    return await call.deps.slack.display_names(sorted(_people(facts)))


def _people(facts: pir.PirFacts) -> set[str]:
    incident = facts.incident
    found = {incident.commander, incident.comms, incident.scribe, incident.confirmed_by}
    found.add(None if incident.alert_source else incident.reporter)
    for value in (incident.title, incident.description, incident.summary):
        found |= text.people(value or "")
    for entry in facts.timeline:  # a row's words name the role holder or action owner as a mention
        found |= {entry.actor} | text.people(render.describe_entry(entry))
    for item in facts.actions:
        found |= {item.owner} | text.people(item.text)
    return {user for user in found if user and text.USER_ID.fullmatch(user)}


async def _pir_draft(
    session: AsyncSession,
    incident: Incident,
    *,
    names: dict[str, str],
    composer: Composer,
    policy: Policy,
    actor: str,
    now: datetime,
) -> Change:
    facts = await pir.gather(session, incident, policy=policy)
    return PirDraft(incident=incident, actor=actor, document=composer.pir_document(facts, names))


async def do_action(call: Call, *, owner: str, what: str, due: str | None) -> Message:
    by = actions.due_date(due, policy=call.deps.policy, now=call.deps.clock())
    change = await call.change(actions.add, owner=owner, text=what, due=by)
    return _ok(
        f"Action {change.number} of {call.public_id(change)} added for <@{owner}>, due {change.due.isoformat()}."
    )


async def do_action_done(call: Call, *, number: int) -> Message:
    change = await call.change(actions.complete, number)
    return _ok(f"Action {change.number} of {call.public_id(change)} is done.")


async def do_actions(call: Call) -> Message:
    today = call.deps.clock().astimezone(call.deps.policy.timezone).date()
    async with call.reading() as (session, incident):
        items = await actions.of_incident(session, incident)
        return call.message("action_items.json.j2", items=items, incident=incident, mine=False, today=today)


async def do_actions_mine(call: Call) -> Message:
    today = call.deps.clock().astimezone(call.deps.policy.timezone).date()
    async with call.deps.db.read() as session:
        items = await actions.open_of_owner(session, call.invocation.user)
        return call.message("action_items.json.j2", items=items, incident=None, mine=True, today=today)


async def do_problem(call: Call, *, key: str) -> Message:
    change = await call.change(knowledge.link_problem, key)
    return _ok(
        f"{call.public_id(change)} is linked to problem {mrkdwn(change.after or '')}. `/incident list problem={mrkdwn(change.after or '')}` lists its incidents."
    )


async def do_similar(call: Call, *, words: str) -> Message:
    async with call.deps.db.read() as session:  # the words a person reads: `R&amp;D` is no search for "amp"
        found = await knowledge.similar(session, text.to_plain(words), limit=5)
    return call.message("incident_similar.json.j2", incidents=found, phrase=words)


async def do_show(call: Call) -> Message:
    return call.deps.composer.render("incident_show.json.j2", await call.incident())


async def do_timeline(call: Call) -> Message:
    async with call.reading() as (session, incident):
        shown = await timeline.visible(session, incident)
    entries = [entry for _, entry in shown]
    names = await names_in_time(call.deps.slack, (entry.actor for entry in entries), wait=NAMES_WAIT)
    numbers = {entry.id: number for number, entry in shown}
    return call.deps.composer.render(
        "incident_timeline.json.j2", incident, entries=entries, numbers=numbers, names=names
    )


async def do_timeline_edit(call: Call, *, n: int, text: str) -> Message:
    change = await call.change(timeline.edit, n, text)
    return _ok(f"Timeline entry {n} of {call.public_id(change)} edited; it said: {_quoted(change.original)}")


async def do_timeline_remove(call: Call, *, n: int) -> Message:
    change = await call.change(timeline.remove, n)
    return _ok(f"Timeline entry {n} of {call.public_id(change)} removed; it said: {_quoted(change.original)}")


def _quoted(stored: str | None) -> str:
    """An entry's former text, echoed privately as it read, with nothing live in it."""
    return "“" + render.truncate_text(text.literal(stored or ""), 300) + "”"


async def do_list(call: Call) -> Message:
    async with call.deps.db.read() as session:
        incidents = await service.list_open(session, limit=40)
        total = await service.count_open(session)
    return call.message("incident_list.json.j2", incidents=incidents, total=total)


async def do_list_problem(call: Call, *, key: str) -> Message:
    async with call.deps.db.read() as session:
        linked = await knowledge.of_problem(session, key)
    return call.message("incident_list.json.j2", incidents=linked, total=len(linked), problem=key)


async def do_stats(call: Call, *, window: str) -> Message:
    days = int(window[:-1])
    async with call.deps.db.read() as session:
        figures = await metrics.report(session, policy=call.deps.policy, now=call.deps.clock(), days=days)
    return reports.as_message(
        figures, renderer=call.deps.renderer, title=f"Incident figures, last {days} days"
    )


async def do_statuspage(call: Call, *, visibility: str) -> Message:
    change = await call.change(statuspage.set_hidden, hidden=visibility == "hide")
    where = "kept off the status page" if change.hidden else "back on the status page"
    return _ok(f"{call.public_id(change)} is {where}.")


async def do_detected(call: Call, *, when: str) -> Message:
    change = await call.change(service.set_detected, when)
    return _ok(
        f"{call.public_id(change)} was detected at {call.deps.renderer.when(change.incident.detected_at)}."
    )


# Arguments more than one form takes.
_REASON = Arg("reason", Kind.TEXT)
_MAYBE_REASON = Arg("reason", Kind.TEXT, optional=True)
_RESOLVE_NEEDS = "resolve needs a summary, cause=<code> and resolution=<code>, e.g. `/incident resolve Rolled back the deploy cause=application-error resolution=rollback`"
# A timeline entry, by the number `/incident timeline` shows
_ENTRY = Arg(
    "n",
    Kind.NUMBER,
    refusal="give the entry's number as `/incident timeline` shows it, e.g. `/incident timeline remove 3`",
)
# On call: a stretch of a schedule, on its own clock
_SPAN = Arg("when", Kind.SPAN)
_SPAN_NOTE = " (each YYYY-MM-DD HH:MM on the schedule's clock; `now` may start it)"
_SCHEDULE = Arg("schedule", Kind.NAME)
# `list problem=` is shown beside the command that links a problem; plain `list` with the reads
_LIST_PROBLEM = Form("list problem=", (Arg("key", Kind.TEXT),), run=do_list_problem)

# Every subcommand, one inner tuple per line of `/incident help`: its forms, each with its arguments
# (how they are read and shown: handlers/grammar.py); `Who` is what the help says of who may (store/
# decides).
GRAMMAR: Grammar = (
    (
        Command.of(
            "declare",
            do_declare,
            Form("declare", (), "open the declare form", run=do_declare_form),
            Form(
                "declare",
                (Arg("priority", Kind.PRIORITY, optional=True), Arg("title", Kind.TEXT)),
                "declare at once",
            ),
        ),
    ),
    (
        Command.of(
            "ack",
            _transition(Action.ACK),
            Form("ack", (), "acknowledge and become commander"),
            aliases=("acknowledge",),
        ),
        Command.of(
            "status", do_status, Form("status", (Arg("status", Kind.CHOICE, choices=tuple(STATUS_ACTIONS)),))
        ),
    ),
    (
        Command.of(
            "priority",
            do_priority,
            Form(
                "priority",
                (Arg("priority", Kind.CHOICE, choices=PRIORITIES, label=PRIORITY_SPAN),),
                who=Who.COMMANDER,
            ),
        ),
        Command.of(
            "assign",
            do_assign,
            Form(
                "assign",
                (
                    Arg("role", Kind.CHOICE, choices=ROLES),
                    Arg(
                        "person",
                        Kind.USER,
                        refusal="name one person with @, e.g. `/incident assign commander @alice`",
                    ),
                ),
                who=Who.COMMANDER,
            ),
        ),
    ),
    (
        Command.of(
            "update",
            do_update,
            Form("update", (Arg("text", Kind.TEXT),), "post a stakeholder update", blank=do_update_form),
        ),
        Command.of("note", do_note, Form("note", (Arg("text", Kind.TEXT),), "add to the timeline")),
    ),
    (
        Command.of(
            "escalate", do_escalate, Form("escalate", (_MAYBE_REASON,), "page the next escalation level now")
        ),
    ),
    (
        Command.of(
            "resolve",
            do_resolve,
            Form(
                "resolve",
                (
                    Arg("summary", Kind.TEXT),
                    Arg("cause", Kind.CODE, refusal=_RESOLVE_NEEDS),
                    Arg("resolution", Kind.CODE, refusal=_RESOLVE_NEEDS),
                ),
                who=Who.COMMANDER,
                blank=do_resolve_form,
            ),
        ),
        Command.of("close", _transition(Action.CLOSE), Form("close", who=Who.COMMANDER)),
        Command.of("reopen", _transition(Action.REOPEN), Form("reopen", (_REASON,), who=Who.COMMANDER)),
        Command.of("cancel", _transition(Action.CANCEL), Form("cancel", (_REASON,), who=Who.COMMANDER)),
    ),
    (
        Command.of("confirm", do_confirm, Form("confirm", (), "service is restored", Who.REPORTER)),
        Command.of(
            "still-broken", do_still_broken, Form("still-broken", (_MAYBE_REASON,), "reopen", Who.REPORTER)
        ),
        Command.of(
            "recode",
            do_recode,
            Form(
                "recode",
                (Arg("cause", Kind.CODE), Arg("resolution", Kind.CODE)),
                "correct the codes",
                Who.COMMANDER,
                either=True,
            ),
        ),
    ),
    (
        Command.of(
            "pir",
            do_pir,
            Form("pir", (), "upload the review draft", note=" (the draft)"),
            Form("pir schedule", (Arg("when", Kind.TIME),), "the review meeting", run=do_pir_schedule),
            Form("pir done", (Arg("link", Kind.TEXT),), "mark the review done", run=do_pir_done),
        ),
    ),
    (
        Command.of(
            "action",
            do_action,
            Form(
                "action",
                (
                    Arg("owner", Kind.USER),
                    Arg("what", Kind.TEXT, label="what is to be done"),
                    Arg("due", Kind.CODE, optional=True, label="YYYY-MM-DD"),
                ),
            ),
            Form(
                "action done",
                (Arg("number", Kind.NUMBER),),
                who=Who.OWNER,
                note="; `/incident actions` lists the numbers",
                run=do_action_done,
            ),
        ),
        Command.of("actions", do_actions, Form("actions"), Form("actions mine", run=do_actions_mine)),
    ),
    (
        Command.of(
            "problem",
            do_problem,
            Form("problem", (Arg("key", Kind.TEXT, label="key or link"),), "link a problem record"),
            _LIST_PROBLEM,
        ),
        Command.of(
            "similar",
            do_similar,
            Form(
                "similar",
                (Arg("words", Kind.WORDS),),
                "earlier incidents like this",
                note=", e.g. `/incident similar database failover`",
            ),
        ),
    ),
    (
        Command.of(
            "detected",
            do_detected,
            Form(
                "detected", (Arg("when", Kind.TIME),), "when it really began", note=" (when it really began)"
            ),
        ),
        Command.of(
            "statuspage",
            do_statuspage,
            Form(
                "statuspage",
                (Arg("visibility", Kind.CHOICE, choices=("hide", "show")),),
                "keep it off the web status page, or put it back",
                Who.COMMANDER,
            ),
        ),
        Command.of(
            "stats",
            do_stats,
            Form(
                "stats",
                (Arg("window", Kind.CHOICE, optional=True, choices=WINDOWS, default="30d"),),
                "figures",
            ),
        ),
    ),
    (
        Command.of(
            "oncall",
            oncall.do_oncall,
            Form("oncall", (Arg("schedule", Kind.NAME, optional=True),), "who is on call now, and next"),
            aliases=("on-call",),
        ),
        Command.of(
            "override",
            oncall.do_override,
            Form(
                "override",
                (
                    _SCHEDULE,
                    Arg(
                        "person",
                        Kind.USER,
                        refusal="name the person on call instead with @, e.g. `/incident override platform @alice 2026-12-10 09:00 2026-12-10 18:00`",
                    ),
                    _SPAN,
                ),
                "someone on call instead",
                Who.ROTA,
                note=_SPAN_NOTE,
            ),
            Form(
                "override remove",
                (Arg("number", Kind.NUMBER),),
                who=Who.ROTA,
                note="; `/incident oncall` lists the numbers",
                run=oncall.do_override_remove,
            ),
        ),
        Command.of(
            "cover",
            oncall.do_cover,
            Form(
                "cover",
                (_SCHEDULE, _SPAN),
                "ask the schedule's channel who will cover",
                Who.ROTA,
                note=_SPAN_NOTE,
            ),
            Form("cover cancel", (Arg("number", Kind.NUMBER),), who=Who.ROTA, run=oncall.do_cover_cancel),
        ),
    ),
    (
        Command.of("show", do_show, Form("show")),
        Command.of(
            "timeline",
            do_timeline,
            Form("timeline", (), "numbered; an entry keeps its number"),
            Form(
                "timeline edit",
                (_ENTRY, Arg("text", Kind.TEXT, label="new text")),
                "a note or a captured message",
                Who.AUTHOR,
                run=do_timeline_edit,
            ),
            Form(
                "timeline remove",
                (_ENTRY,),
                "take it off (the audit trail keeps it)",
                Who.AUTHOR,
                run=do_timeline_remove,
            ),
        ),
        Command.of("list", do_list, Form("list", (), "open incidents"), also=(_LIST_PROBLEM,)),
        Command.of("help", do_help, Form("help")),
    ),
)
HANDLERS: dict[str, Handler] = dispatch(GRAMMAR)
