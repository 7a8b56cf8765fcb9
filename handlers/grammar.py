"""The shape of the `/incident` command table: what a person may type, who may, and what it does.

The table itself is at the end of handlers/commands.py, beside the handlers it names; the help
(templates/help.json.j2) and the did-you-mean suggestion are drawn from it."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any


class Who(enum.Enum):
    """Who may use a form. The rule itself lives in store/ (every entry point obeys it); this is what
    the help says of it."""

    ANYONE = "anyone"
    COMMANDER = "the commander or an admin"
    REPORTER = "the reporter, the commander or an admin"
    OWNER = "the action item's owner, the commander or an admin"

    @property
    def hint(self) -> str:
        """What the help shows after the usage: only the reporter is named, since a person would not
        guess that the one who reported may answer for the service; a refusal names everyone who may
        (handlers/replies.py)."""
        return "reporter" if self is Who.REPORTER else ""


@dataclass(frozen=True)
class Form:
    """One way to type a command: its usage as the help shows it, and what it does."""

    usage: str
    description: str = ""
    who: Who = Who.ANYONE


@dataclass(frozen=True)
class Command:
    """A verb, the handler that runs it, the forms it takes, and other words for it."""

    verb: str
    run: Callable[..., Awaitable[Any]]
    forms: tuple[Form, ...]
    aliases: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, verb: str, run: Callable[..., Awaitable[Any]], *forms: Form, aliases: tuple[str, ...] = ()
    ) -> Command:
        return cls(verb=verb, run=run, forms=forms, aliases=aliases)


# One inner tuple per line of the help.
Grammar = tuple[tuple[Command, ...], ...]


def commands(grammar: Grammar) -> Iterator[Command]:
    for line in grammar:
        yield from line


def dispatch(grammar: Grammar) -> dict[str, Callable[..., Awaitable[Any]]]:
    """{verb or alias: handler}; a verb in the table twice is a mistake in the table."""
    table: dict[str, Callable[..., Awaitable[Any]]] = {}
    for command in commands(grammar):
        for word in (command.verb, *command.aliases):
            if not callable(command.run):
                raise TypeError(f"/incident {word} has no handler")
            if word in table:
                raise ValueError(f"/incident {word} is in the command table twice")
            table[word] = command.run
    return table
