"""`/incident <subcommand>`: parse the text, run one use case, answer privately in the ack."""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import flows, render, reports, text, views
from handlers.deps import Deps
from handlers.flows import UseCaseContext
from handlers.grammar import Command, Form, Grammar, Who, dispatch
from handlers.messages import Composer
from handlers.render import Message, mrkdwn
from handlers.replies import NO_USER, answer
from store import actions, closure, knowledge, metrics, pir, service
from store.change import Change
from store.errors import InvalidInput
from store.machine import STATUS_ACTIONS, Action
from store.models import Incident
from store.policy import PRIORITIES, ROLES, Policy

_USER = re.compile(r"<@([UW][A-Z0-9_]+)(?:\|[^>]*)?>")
NAMES_WAIT = 1.0  # seconds the timeline waits for display names (it answers in the ack)
_CODE_ARG = re.compile(r"\b(cause|resolution)=(\S*)")
_NUMBER = re.compile(r"[0-9]{1,6}")  # not str.isdigit(): `²` is a digit that int() refuses
WINDOWS = ("7d", "30d", "90d")  # what `stats` reports over


@dataclass(frozen=True)
class Invocation:
    user: str
    channel: str
    verb: str
    rest: str
    ref: str | None
    trigger_id: str
    response_url: str

    @property
    def args(self) -> list[str]:
        return self.rest.split()


# A subcommand's handler: what was typed, who acts where, and the dependencies; None: answered by a modal.
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


async def do_help(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    return deps.renderer.message("help.json.j2", prefix=deps.policy.incident_prefix, commands=GRAMMAR)


async def do_declare(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message | None:
    if not invocation.rest:
        view = views.declare_view(deps, origin_channel=invocation.channel)
        deps.spawn(deps.slack.open_view(trigger_id=invocation.trigger_id, view=view))
        return None
    priority, title = None, invocation.rest
    first, _, remainder = title.partition(" ")
    if re.fullmatch(r"[Pp]\d+", first):
        priority, title = first.upper(), remainder
        if priority not in PRIORITIES:
            raise InvalidInput(
                field="priority", problem=f"unknown priority {first}", choices=list(PRIORITIES)
            )
    change = await flows.declare(
        deps, title=title, priority=priority, reporter=invocation.user, origin_channel=invocation.channel
    )
    incident = change.incident
    where = (
        "an incident channel is being opened and you will be invited"
        if deps.policy.per_incident
        else "the card is posted here"
    )
    return _ok(f"Declared *{deps.policy.public_id(incident.number)}* [{incident.priority}]: {where}.")


def _transition(action: Action, **extra: str) -> Handler:
    async def handler(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
        change = await flows.change(
            deps, ctx, invocation.ref, service.apply, action, **_extra(invocation, action)
        )
        reply = f"{deps.policy.public_id(change.incident.number)} is now *{change.after}*."
        if open_items := change.extra.get("open_actions"):
            reply += f" :warning: It still has {len(open_items)} open action item{'s' if len(open_items) > 1 else ''}; they stay tracked and reminded: `/incident actions`."
        return _ok(reply)

    return handler


def _extra(invocation: Invocation, action: Action) -> dict[str, str]:
    if action in (Action.REOPEN, Action.CANCEL):
        return {"reason": invocation.rest}
    return {}


async def do_status(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    word = invocation.rest.lower()
    if word not in STATUS_ACTIONS:
        raise InvalidInput(
            field="status",
            problem=f"unknown status {word!r}" if word else "say which status",
            choices=list(STATUS_ACTIONS),
        )
    return await _transition(STATUS_ACTIONS[word])(invocation, ctx, deps)


async def do_resolve(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message | None:
    if not invocation.rest:
        incident = await flows.read_incident(deps, ctx, invocation.ref)
        views.check_resolvable(incident, actor=invocation.user, deps=deps)
        deps.spawn(
            deps.slack.open_view(trigger_id=invocation.trigger_id, view=views.resolve_view(deps, incident))
        )
        return None
    codes = dict(_CODE_ARG.findall(invocation.rest))
    summary = _CODE_ARG.sub("", invocation.rest).strip()
    if "cause" not in codes or "resolution" not in codes:
        raise InvalidInput(
            field="resolve",
            problem="resolve needs a summary, cause=<code> and resolution=<code>, e.g. `/incident resolve Rolled back the deploy cause=application-error resolution=rollback`",
        )
    change = await flows.change(
        deps,
        ctx,
        invocation.ref,
        service.apply,
        Action.RESOLVE,
        summary=summary,
        cause=codes["cause"],
        resolution=codes["resolution"],
    )
    return _ok(f"{deps.policy.public_id(change.incident.number)} is resolved.")


async def do_confirm(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    change = await flows.change(deps, ctx, invocation.ref, closure.confirm)
    public_id = deps.policy.public_id(change.incident.number)
    if "then" in change.extra:
        return _ok(f"Thanks: {public_id} is confirmed restored and now closed.")
    return _ok(f"Thanks: {public_id} is confirmed restored; it closes once {change.extra['waiting']}.")


async def do_still_broken(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    change = await flows.change(deps, ctx, invocation.ref, closure.still_broken, invocation.rest)
    return _ok(f"{deps.policy.public_id(change.incident.number)} is reopened and back to *investigating*.")


async def do_recode(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    codes = dict(_CODE_ARG.findall(invocation.rest))
    if _CODE_ARG.sub("", invocation.rest).strip() or not codes:
        raise InvalidInput(
            field="recode",
            problem="usage: `/incident recode cause=<code> resolution=<code>` (either or both)",
        )
    change = await flows.change(
        deps,
        ctx,
        invocation.ref,
        closure.recode,
        cause=codes.get("cause"),
        resolution=codes.get("resolution"),
    )
    incident = change.incident
    return _ok(
        f"{deps.policy.public_id(incident.number)} now has cause `{incident.cause_code}` and resolution `{incident.resolution_code}`."
    )


async def do_priority(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    if len(invocation.args) != 1:
        raise InvalidInput(field="priority", problem="say which priority", choices=list(PRIORITIES))
    change = await flows.change(deps, ctx, invocation.ref, service.change_priority, invocation.args[0])
    return _ok(f"{deps.policy.public_id(change.incident.number)} is now {change.after}.")


async def do_assign(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    args = invocation.args
    if not args or args[0].lower() not in ROLES:
        raise InvalidInput(
            field="role",
            problem=f"unknown role {args[0]!r}" if args else "say which role",
            choices=list(ROLES),
        )
    user = _USER.fullmatch(args[1]) if len(args) == 2 else None
    if user is None:
        raise InvalidInput(
            field="user", problem="name one person with @, e.g. `/incident assign commander @alice`"
        )
    change = await flows.change(deps, ctx, invocation.ref, service.assign, args[0], user.group(1))
    return _ok(f"<@{change.after}> is now {change.text} of {deps.policy.public_id(change.incident.number)}.")


async def do_update(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message | None:
    if not invocation.rest:
        incident = await flows.read_incident(deps, ctx, invocation.ref)
        deps.spawn(
            deps.slack.open_view(trigger_id=invocation.trigger_id, view=views.update_view(deps, incident))
        )
        return None
    change = await flows.change(deps, ctx, invocation.ref, service.post_update, invocation.rest)
    return _ok(
        f"Update posted to {deps.policy.public_id(change.incident.number)}'s channel and status thread."
    )


async def do_note(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    change = await flows.change(deps, ctx, invocation.ref, service.add_note, invocation.rest)
    return _ok(f"Noted in {deps.policy.public_id(change.incident.number)}'s timeline.")


async def do_escalate(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    change = await flows.change(deps, ctx, invocation.ref, service.escalate, reason=invocation.rest)
    level = deps.composer.level(change.extra["level"])
    again = " again (it is the last level)" if change.extra["repeat"] else ""
    return _ok(
        f"Paging level {change.extra['level']} ({level.name if level else '?'}){again} for {deps.policy.public_id(change.incident.number)}."
    )


async def do_pir(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    sub, _, rest = invocation.rest.partition(" ")
    sub, rest = sub.lower(), rest.strip()
    if sub == "done" and rest:
        change = await flows.change(deps, ctx, invocation.ref, service.pir_done, rest)
        return _ok(f"Post-incident review of {deps.policy.public_id(change.incident.number)} marked done.")
    if sub == "schedule" and rest:
        change = await flows.change(deps, ctx, invocation.ref, service.schedule_pir, rest)
        at = deps.renderer.when(change.incident.pir_meeting_at)
        return _ok(
            f"Review meeting for {deps.policy.public_id(change.incident.number)} set for {at}; participants are reminded an hour before."
        )
    if sub == "":
        names = await _review_names(invocation, deps)
        change = await flows.change(
            deps, ctx, invocation.ref, _pir_draft, names=names, composer=deps.composer
        )
        return _ok(
            f"The review draft of {deps.policy.public_id(change.incident.number)} is being uploaded to its channel."
        )
    raise InvalidInput(
        field="pir",
        problem="usage: `/incident pir` (the draft), `/incident pir schedule YYYY-MM-DD HH:MM`, `/incident pir done <link>`",
    )


async def _review_names(invocation: Invocation, deps: Deps) -> dict[str, str]:
    """The display names of everyone the review names, asked of Slack before its transaction opens."""
    async with deps.db.read() as session:
        incident = await service.find(
            session, policy=deps.policy, ref=invocation.ref, channel=invocation.channel
        )
        facts = await pir.gather(session, incident, policy=deps.policy)
    return await deps.slack.display_names(sorted(_people(facts)))


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
    return Change(
        incident=incident,
        kind="pir_draft",
        actor=actor,
        extra={"document": composer.pir_document(facts, names)},
    )


async def do_action(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    args = invocation.args
    if args[:1] == ["done"]:
        if len(args) != 2 or not _NUMBER.fullmatch(args[1]):
            raise InvalidInput(
                field="action",
                problem="usage: `/incident action done <number>`; `/incident actions` lists the numbers",
            )
        change = await flows.change(deps, ctx, invocation.ref, actions.complete, int(args[1]))
        return _ok(
            f"Action {change.extra['action']} of {deps.policy.public_id(change.incident.number)} is done."
        )
    owner = _USER.fullmatch(args[0]) if args else None
    if owner is None:
        raise InvalidInput(
            field="action", problem="usage: `/incident action @owner <what is to be done> [due=YYYY-MM-DD]`"
        )
    due_text = next((a[4:] for a in args[1:] if a.startswith("due=")), None)
    what = " ".join(a for a in args[1:] if not a.startswith("due="))
    due = actions.due_date(due_text, policy=deps.policy, now=deps.clock())
    change = await flows.change(
        deps, ctx, invocation.ref, actions.add, owner=owner.group(1), text=what, due=due
    )
    return _ok(
        f"Action {change.extra['action']} of {deps.policy.public_id(change.incident.number)} added for <@{owner.group(1)}>, due {change.extra['due']}."
    )


async def do_actions(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    today = deps.clock().astimezone(deps.policy.timezone).date()
    async with deps.db.read() as session:
        if invocation.rest.lower() == "mine":
            items = await actions.open_of_owner(session, invocation.user)
            return deps.renderer.message(
                "action_items.json.j2", items=items, incident=None, mine=True, today=today, policy=deps.policy
            )
        incident = await service.find(
            session, policy=deps.policy, ref=invocation.ref, channel=invocation.channel
        )
        items = await actions.of_incident(session, incident)
        return deps.renderer.message(
            "action_items.json.j2",
            items=items,
            incident=incident,
            mine=False,
            today=today,
            policy=deps.policy,
        )


async def do_problem(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    change = await flows.change(deps, ctx, invocation.ref, knowledge.link_problem, invocation.rest)
    return _ok(
        f"{deps.policy.public_id(change.incident.number)} is linked to problem {mrkdwn(change.after or '')}. `/incident list problem={mrkdwn(change.after or '')}` lists its incidents."
    )


async def do_similar(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    phrase = text.to_plain(invocation.rest)  # the words a person reads: `R&amp;D` is no search for "amp"
    if not knowledge.words(phrase):
        raise InvalidInput(
            field="similar",
            problem="usage: `/incident similar <words>`, e.g. `/incident similar database failover`",
        )
    async with deps.db.read() as session:
        found = await knowledge.similar(session, phrase, limit=5)
    return deps.renderer.message(
        "incident_similar.json.j2", incidents=found, policy=deps.policy, phrase=invocation.rest
    )


async def do_show(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    async with deps.db.rows() as connection:
        incident = await service.view(
            connection, policy=deps.policy, ref=invocation.ref, channel=invocation.channel
        )
    return deps.composer.render("incident_show.json.j2", incident)


async def do_timeline(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    async with deps.db.read() as session:
        incident = await service.find(
            session, policy=deps.policy, ref=invocation.ref, channel=invocation.channel
        )
        entries = await service.timeline(session, incident)
    names = await _names_in_time(deps, {entry.actor for entry in entries})
    return deps.composer.render("incident_timeline.json.j2", incident, entries=entries, names=names)


async def _names_in_time(deps: Deps, users: set[str]) -> dict[str, str]:
    """Display names for an answer given in the ack: what Slack tells within NAMES_WAIT seconds, so the
    ack stays inside Slack's 3 seconds; anyone not yet known is shown by their mention alone."""
    wanted = sorted(user for user in users if user and text.USER_ID.fullmatch(user))
    try:
        return await asyncio.wait_for(deps.slack.display_names(wanted), timeout=NAMES_WAIT)
    except TimeoutError:
        return {}


async def do_list(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    if invocation.rest.lower().startswith("problem="):
        key = invocation.rest[len("problem=") :].strip()
        async with deps.db.read() as session:
            linked = await knowledge.of_problem(session, key)
        return deps.renderer.message(
            "incident_list.json.j2", incidents=linked, total=len(linked), policy=deps.policy, problem=key
        )
    async with deps.db.read() as session:
        incidents = await service.list_open(session, limit=40)
        total = await service.count_open(session)
    return deps.renderer.message(
        "incident_list.json.j2", incidents=incidents, total=total, policy=deps.policy
    )


async def do_stats(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    window = invocation.rest.lower() or "30d"
    if window not in WINDOWS:
        raise InvalidInput(
            field="stats", problem=f"unknown window {invocation.rest!r}", choices=list(WINDOWS)
        )
    days = int(window[:-1])
    async with deps.db.read() as session:
        figures = await metrics.report(session, policy=deps.policy, now=deps.clock(), days=days)
    return reports.as_message(figures, renderer=deps.renderer, title=f"Incident figures, last {days} days")


async def do_detected(invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message:
    if not invocation.rest:
        raise InvalidInput(
            field="detected", problem="usage: `/incident detected YYYY-MM-DD HH:MM` (when it really began)"
        )
    change = await flows.change(deps, ctx, invocation.ref, service.set_detected, invocation.rest)
    return _ok(
        f"{deps.policy.public_id(change.incident.number)} was detected at {deps.renderer.when(change.incident.detected_at)}."
    )


_SPAN = f"{PRIORITIES[0]}-{PRIORITIES[-1]}"

# Every subcommand, one inner tuple per line of `/incident help`; `Who` is what the help says of who may
# (store/ decides).
GRAMMAR: Grammar = (
    (
        Command.of(
            "declare",
            do_declare,
            Form("declare", "open the declare form"),
            Form(f"declare [{_SPAN}] <title>", "declare at once"),
        ),
    ),
    (
        Command.of(
            "ack",
            _transition(Action.ACK),
            Form("ack", "acknowledge and become commander"),
            aliases=("acknowledge",),
        ),
        Command.of("status", do_status, Form("status " + "|".join(STATUS_ACTIONS))),
    ),
    (
        Command.of("priority", do_priority, Form(f"priority {_SPAN}", who=Who.COMMANDER)),
        Command.of("assign", do_assign, Form(f"assign {'|'.join(ROLES)} @person", who=Who.COMMANDER)),
    ),
    (
        Command.of("update", do_update, Form("update <text>", "post a stakeholder update (no text: a form)")),
        Command.of("note", do_note, Form("note <text>", "add to the timeline")),
    ),
    (Command.of("escalate", do_escalate, Form("escalate [reason]", "page the next escalation level now")),),
    (
        Command.of(
            "resolve",
            do_resolve,
            Form("resolve <summary> cause=<code> resolution=<code>", "(no text: a form)", Who.COMMANDER),
        ),
        Command.of("close", _transition(Action.CLOSE), Form("close", who=Who.COMMANDER)),
        Command.of("reopen", _transition(Action.REOPEN), Form("reopen <reason>", who=Who.COMMANDER)),
        Command.of("cancel", _transition(Action.CANCEL), Form("cancel <reason>", who=Who.COMMANDER)),
    ),
    (
        Command.of("confirm", do_confirm, Form("confirm", "service is restored", Who.REPORTER)),
        Command.of("still-broken", do_still_broken, Form("still-broken [reason]", "reopen", Who.REPORTER)),
        Command.of(
            "recode",
            do_recode,
            Form("recode cause=<code> resolution=<code>", "correct the codes", Who.COMMANDER),
        ),
    ),
    (
        Command.of(
            "pir",
            do_pir,
            Form("pir", "upload the review draft"),
            Form("pir schedule YYYY-MM-DD HH:MM", "the review meeting"),
            Form("pir done <link>", "mark the review done"),
        ),
    ),
    (
        Command.of(
            "action",
            do_action,
            Form("action @owner <what is to be done> [due=YYYY-MM-DD]"),
            Form("action done <number>", who=Who.OWNER),
        ),
        Command.of("actions", do_actions, Form("actions"), Form("actions mine")),
    ),
    (
        # `list problem=` is shown beside the command that links a problem; plain `list` with the reads
        Command.of(
            "problem",
            do_problem,
            Form("problem <key or link>", "link a problem record"),
            Form("list problem=<key>"),
        ),
        Command.of("similar", do_similar, Form("similar <words>", "earlier incidents like this")),
    ),
    (
        Command.of("detected", do_detected, Form("detected YYYY-MM-DD HH:MM", "when it really began")),
        Command.of("stats", do_stats, Form(f"stats [{'|'.join(WINDOWS)}]", "figures")),
    ),
    (
        Command.of("show", do_show, Form("show")),
        Command.of("timeline", do_timeline, Form("timeline")),
        Command.of("list", do_list, Form("list", "open incidents")),
        Command.of("help", do_help, Form("help")),
    ),
)
HANDLERS: dict[str, Handler] = dispatch(GRAMMAR)
