"""The `/incident` command table (handlers/commands.py GRAMMAR): every verb has a handler, the help is
generated from the table and shows all of it, and what the table says of who may agrees with the store."""

from __future__ import annotations

import inspect

import pytest

from handlers import commands
from handlers.grammar import Command, Form, Who, dispatch
from handlers.render import mrkdwn
from store.machine import COMMANDER_ACTIONS, Action
from tests.helpers import mrkdwn_texts
from tests.test_templates import COMPOSER, check

TABLE = [command for line in commands.GRAMMAR for command in line]


def _help(**context):
    return COMPOSER.renderer.message("help.json.j2", prefix="INC", commands=commands.GRAMMAR, **context)


def test_every_verb_and_alias_dispatches_to_its_handler() -> None:
    assert {
        word: command.run for command in TABLE for word in (command.verb, *command.aliases)
    } == commands.HANDLERS
    for command in TABLE:
        assert inspect.iscoroutinefunction(command.run), command.verb
        assert list(inspect.signature(command.run).parameters) == ["invocation", "ctx", "deps"]


def test_a_verb_without_a_handler_or_in_the_table_twice_is_refused() -> None:
    async def note(invocation, ctx, deps):
        return None

    with pytest.raises(TypeError, match="/incident note has no handler"):
        dispatch(((Command.of("note", None, Form("note")),),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="/incident note is in the command table twice"):
        dispatch(((Command.of("note", note, Form("note")), Command.of("note", note, Form("note"))),))


def test_the_help_shows_every_form_of_every_verb_in_table_order() -> None:
    message = _help()
    check(message)
    (shown,) = mrkdwn_texts(message.blocks)
    lines = shown.split("\n")[1:]
    assert len(lines) == len(commands.GRAMMAR)
    for line, grammar_line in zip(lines, commands.GRAMMAR, strict=True):
        parts = line.split(" · ")
        forms = [form for command in grammar_line for form in command.forms]
        assert [part.partition("` ")[0] + "`" if "` " in part else part for part in parts] == [
            f"`{mrkdwn(form.usage)}`" for form in forms
        ]
    verbs = " | ".join(command.verb for command in TABLE)
    assert message.text == f"Usage: /incident {verbs}"


def test_the_help_names_the_reporter_where_the_reporter_may() -> None:
    (shown,) = mrkdwn_texts(_help().blocks)
    for command in TABLE:
        for form in command.forms:
            named = f"`{mrkdwn(form.usage)}` (reporter)" in shown
            assert named == (form.who is Who.REPORTER), form.usage


def test_who_may_agrees_with_the_store_for_every_state_change() -> None:
    """A command that moves the incident along the transition table is the commander's (or an admin's)
    exactly when store/machine.py says so."""
    transitions = [command for command in TABLE if command.verb in {action.value for action in Action}]
    assert transitions
    for command in transitions:
        expected = Who.COMMANDER if Action(command.verb) in COMMANDER_ACTIONS else Who.ANYONE
        assert {form.who for form in command.forms} == {expected}, command.verb


def test_an_unknown_verb_is_answered_with_the_help_and_the_closest_verb() -> None:
    message = _help(unknown="timelin", guess="timeline")
    check(message)
    assert message.text.startswith(":warning: Unknown subcommand `timelin`. Did you mean `timeline`?")


async def test_a_mistyped_verb_is_matched_against_the_table(bot) -> None:
    reply = await bot.slack.command("timelin")
    assert "Did you mean `timeline`?" in reply.json["text"]
    reply = await bot.slack.command("acknowledg")
    assert "Did you mean `acknowledge`?" in reply.json["text"]  # aliases are in the table too
    assert mrkdwn_texts(reply.json["blocks"])[1] == mrkdwn_texts(_help().blocks)[0]
