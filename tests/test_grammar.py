"""The `/incident` grammar as data (handlers/grammar.py): each form's arguments are declared once, the
help's usage is written from them, the parser reads typed words into them, and each handler takes
exactly them. The refusals are worded as people have always read them."""

from __future__ import annotations

import inspect
import re

import pytest

from handlers import commands
from handlers.grammar import Arg, Command, Form, Kind, dispatch
from store.errors import InvalidInput
from store.policy import PRIORITIES
from tests.helpers import declare

TABLE = [command for line in commands.GRAMMAR for command in line]
FORMS = [form for command in TABLE for form in command.forms]
PARSER = {command.verb: command for command in TABLE}
# A usage's pieces after the form's words: a bracketed placeholder, the time pattern, or a word.
SPAN = f"{PRIORITIES[0]}-{PRIORITIES[-1]}"
PIECE = re.compile(r"\[[^\]]*\]|<from> <to>|<[^>]*>|YYYY-MM-DD HH:MM|\S+")


def _names(arg: Arg, piece: str) -> bool:
    """Whether `piece` of a usage is how a person would know `arg`: optional exactly when bracketed."""
    if arg.optional != piece.startswith("["):
        return False
    inner = piece.strip("[]")
    match arg.kind:
        case Kind.CODE:
            return inner.startswith(f"{arg.name}=") and len(inner) > len(arg.name) + 1
        case Kind.USER:
            return inner == f"@{arg.name}"
        case Kind.CHOICE:
            return bool(arg.choices) and inner in ("|".join(arg.choices), SPAN)
        case Kind.PRIORITY:
            return inner == SPAN
        case Kind.TIME:
            return inner == "YYYY-MM-DD HH:MM"
        case Kind.SPAN:
            return inner == "<from> <to>"
        case _:
            return inner.strip("<>") in (arg.name, arg.label) and (arg.optional or piece.startswith("<"))


@pytest.mark.parametrize("form", FORMS, ids=lambda form: form.usage)
def test_every_forms_usage_names_exactly_its_declared_arguments(form: Form) -> None:
    assert form.usage.startswith(form.words)
    pieces = PIECE.findall(form.usage[len(form.words) :])
    assert len(pieces) == len(form.args), (pieces, form.args)
    for arg, piece in zip(form.args, pieces, strict=True):
        assert _names(arg, piece), (piece, arg)


def test_the_help_shows_the_usages_people_know() -> None:
    shown = {form.usage: form.description for form in FORMS}
    assert shown["declare [P1-P4] <title>"] == "declare at once"
    assert shown["resolve <summary> cause=<code> resolution=<code>"] == "(no text: a form)"
    assert shown["update <text>"] == "post a stakeholder update (no text: a form)"
    assert shown["action @owner <what is to be done> [due=YYYY-MM-DD]"] == ""
    assert "assign commander|comms|scribe @person" in shown
    assert "recode cause=<code> resolution=<code>" in shown  # either or both, as the refusal says
    assert {"list problem=<key>", "stats [7d|30d|90d]", "priority P1-P4", "escalate [reason]"} <= set(shown)


def _example(arg: Arg) -> str:
    value = {
        Kind.CHOICE: arg.choices[-1] if arg.choices else "",
        Kind.PRIORITY: PRIORITIES[0].lower(),
        Kind.USER: "<@U0EXAMPLE|sam>",
        Kind.NUMBER: "7",
        Kind.TIME: "2026-12-01 14:30",
        Kind.SPAN: "2026-12-01 14:30 2026-12-01 18:00",
        Kind.NAME: "platform",
        Kind.CODE: "x",
        Kind.WORDS: "database failover",
        Kind.TEXT: "some words",
    }[arg.kind]
    return f"{arg.name}={value}" if arg.kind is Kind.CODE else value


@pytest.mark.parametrize("form", FORMS, ids=lambda form: form.usage)
def test_typing_what_the_help_shows_picks_that_form_with_exactly_its_arguments(form: Form) -> None:
    """`list problem=<key>` is shown beside `problem` and read by `list`."""
    typed = " ".join([*form.keyword, *(_example(arg) for arg in form.args)])
    if form.words.endswith("="):  # its value follows the `=` directly
        typed = form.keyword[-1] + " ".join(_example(arg) for arg in form.args)
    chosen, rest = PARSER[form.verb].choose(typed)
    assert chosen is form
    assert set(form.read(rest)) == {arg.name for arg in form.args}


@pytest.mark.parametrize("form", FORMS, ids=lambda form: form.usage)
def test_every_handler_takes_exactly_its_forms_arguments(form: Form) -> None:
    handler = form.run or PARSER[form.verb].handler
    assert handler is not None
    parameters = list(inspect.signature(handler).parameters.values())
    assert parameters[0].name == "call"
    given = parameters[1:]
    if [p.kind for p in given] != [inspect.Parameter.VAR_KEYWORD]:  # a transition hands them on as they are
        assert {p.kind for p in given} <= {inspect.Parameter.KEYWORD_ONLY}
        assert [p.name for p in given] == [arg.name for arg in form.args]
    if form.blank:
        assert list(inspect.signature(form.blank).parameters) == ["call"]


# The parser on its own, on a table made for the test ---------------------------------------------------


async def _handler(call, **given):  # never run here
    return None


RECORD = Command.of(
    "record",
    _handler,
    Form("record"),
    Form("record done", (Arg("number", Kind.NUMBER),), note="; the numbers are listed"),
    Form("record key=", (Arg("key", Kind.TEXT),)),
)
FILE = Command.of(
    "file",
    _handler,
    Form(
        "file",
        (
            Arg("priority", Kind.PRIORITY, optional=True),
            Arg("owner", Kind.USER),
            Arg("what", Kind.TEXT),
            Arg("due", Kind.CODE, optional=True),
        ),
    ),
)


def _read(command: Command, typed: str) -> dict:
    form, rest = command.choose(typed)
    return form.read(rest)


def _refusal(command: Command, typed: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        _read(command, typed)
    return refused.value


def test_codes_are_read_wherever_they_stand_and_the_rest_in_order() -> None:
    assert _read(FILE, "P2 <@U1> fix  the cert due=2027-01-01") == {
        "priority": "P2",
        "owner": "U1",
        "what": "fix  the cert",  # as typed
        "due": "2027-01-01",
    }
    assert _read(FILE, "due=a <@U1> fix DUE=b it") == {
        "priority": None,
        "owner": "U1",
        "what": "fix it",
        "due": "b",
    }
    assert _read(FILE, "<@U1>") == {"priority": None, "owner": "U1", "what": "", "due": None}
    assert _read(FILE, "<@U1> undue=a") == {"priority": None, "owner": "U1", "what": "undue=a", "due": None}


def test_a_leading_priority_is_checked_as_typed() -> None:
    refused = _refusal(FILE, "p7 <@U1> x")
    assert refused.problem == "unknown priority p7" and refused.choices == list(PRIORITIES)


def test_words_that_fit_no_argument_are_refused_with_the_usage() -> None:
    assert (
        _refusal(FILE, "bob fix it").problem == "usage: `/incident file [P1-P4] @owner <what> [due=<code>]`"
    )
    assert (
        _refusal(RECORD, "done 1 2").problem
        == "usage: `/incident record done <number>`; the numbers are listed"
    )
    assert (
        _refusal(RECORD, "done ²").problem
        == "usage: `/incident record done <number>`; the numbers are listed"
    )
    assert _refusal(RECORD, "sideways").problem == (
        "usage: `/incident record`, `/incident record done <number>`; the numbers are listed, `/incident record key=<key>`"
    )


def test_a_forms_own_words_pick_it_in_any_case_and_a_word_ending_in_equals_takes_its_value_directly() -> None:
    assert RECORD.choose("") == (RECORD.forms[0], "")
    assert _read(RECORD, "DONE 12") == {"number": 12}
    assert _read(RECORD, "Key=PRB 12") == {"key": "PRB 12"}
    assert _read(RECORD, "key=") == {"key": ""}


def test_a_choice_is_read_in_any_case_and_refused_as_typed() -> None:
    status = Command.of(
        "status", _handler, Form("status", (Arg("status", Kind.CHOICE, choices=("up", "down")),))
    )
    assert _read(status, "UP") == {"status": "up"}
    missing = _refusal(status, "")
    assert (missing.problem, missing.choices) == ("say which status", ["up", "down"])
    assert _refusal(status, "Up now").problem == "unknown status 'Up now'"  # the last argument takes the rest
    stats = Command.of(
        "stats",
        _handler,
        Form("stats", (Arg("window", Kind.CHOICE, optional=True, choices=("7d",), default="7d"),)),
    )
    assert _read(stats, "") == {"window": "7d"}


def test_either_or_both_and_a_command_of_one_bare_form() -> None:
    recode = Command.of(
        "recode", _handler, Form("recode", (Arg("a", Kind.CODE), Arg("b", Kind.CODE)), either=True)
    )
    assert _read(recode, "b=2") == {"a": None, "b": "2"}
    assert _refusal(recode, "").problem == "usage: `/incident recode a=<code> b=<code>` (either or both)"
    assert (
        _refusal(recode, "a=1 and").problem == "usage: `/incident recode a=<code> b=<code>` (either or both)"
    )
    close = Command.of("close", _handler, Form("close"))
    assert close.choose("please, now") == (close.forms[0], "")


def test_forms_that_would_read_the_same_words_are_a_mistake_in_the_table() -> None:
    with pytest.raises(ValueError, match="/incident note has two forms that read the same words"):
        dispatch(
            (
                (
                    Command.of(
                        "note",
                        _handler,
                        Form("note", (Arg("a", Kind.TEXT),)),
                        Form("note", (Arg("b", Kind.TEXT),)),
                    ),
                ),
            )
        )


# Through Slack ---------------------------------------------------------------------------------------


async def test_typed_arguments_reach_the_use_case(bot) -> None:
    incident = await declare(bot, "p2 Cache cold")
    channel = incident.channel.id
    assert (
        "INC-1 is now *investigating*"
        in (await bot.slack.command("ack please", channel=channel, user="U_BOB")).body
    )
    assert (
        "is now *identified*"
        in (await bot.slack.command("status Identified", channel=channel, user="U_BOB")).body
    )
    linked = await bot.slack.command("problem Database outage 12", channel=channel)
    assert "linked to problem Database outage 12" in linked.body
    listed = await bot.slack.command("list Problem=Database outage 12")
    assert "INC-1" in listed.json["text"]
    refused = await bot.slack.command("actions all", channel=channel)
    assert refused.json["text"] == ":warning: Usage: `/incident actions`, `/incident actions mine`."
