"""The shape of the `/incident` command table: what a person may type, who may, and what it does.

The table itself is at the end of handlers/commands.py, beside the handlers it names; the help
(templates/help.json.j2) and the did-you-mean suggestion are drawn from it, and so is the reading of
what was typed: each form declares its arguments, `Command.run` finds the form the words fit and hands
its handler their values by name. A form's usage, as the help shows it, is written from those arguments,
so the help and the parser cannot disagree.

How words find their form: a form whose own words (after the verb) begin the text is taken; otherwise
an empty text takes the verb alone (the bare form), and any other text the form that has arguments and no
words of its own. A command that has nothing but its bare form ignores what follows it (`close please`).
Text that fits no form is refused with the usage of every form of the verb.

How a form's arguments are read: `name=value` codes first, wherever they stand; then the others in order,
each taking a word, except that the last takes the rest of the text (so that `status monitoring now` is
refused as typed), and text arguments take the rest. Text may be empty: what a note, a reason or a title
must say is the store's rule, worded there. Refusals are the domain's InvalidInput, answered in one place
(handlers/replies.py)."""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import flows, text
from handlers.deps import Deps
from handlers.flows import C, UseCaseContext
from handlers.render import Message
from store import knowledge, service
from store.change import Change
from store.errors import Field, InvalidInput
from store.models import Incident
from store.policy import PRIORITIES

MENTION = re.compile(r"<@([UW][A-Z0-9_]+)(?:\|[^>]*)?>")  # a person, as Slack encodes an @mention
_NUMBER = re.compile(r"[0-9]{1,6}")  # not str.isdigit(): `²` is a digit that int() refuses
_PRIORITY = re.compile(r"[Pp]\d+")
PRIORITY_SPAN = f"{PRIORITIES[0]}-{PRIORITIES[-1]}"  # how the help writes a priority


class Who(enum.Enum):
    """Who may use a form. The rule itself lives in store/ (every entry point obeys it); this is what
    the help says of it."""

    ANYONE = "anyone"
    COMMANDER = "the commander or an admin"
    REPORTER = "the reporter, the commander or an admin"
    OWNER = "the action item's owner, the commander or an admin"
    AUTHOR = "the entry's author, the commander or an admin"
    ROTA = "the people on the schedule's rota or an admin"

    @property
    def hint(self) -> str:
        """What the help shows after the usage: only the reporter is named, since a person would not
        guess that the one who reported may answer for the service; a refusal names everyone who may
        (handlers/replies.py)."""
        return "reporter" if self is Who.REPORTER else ""


class Kind(enum.Enum):
    """What an argument is, and so how it is read and shown."""

    CHOICE = "one of its choices, in any case; the value is the choice as the table spells it"
    PRIORITY = "a leading word like P2, the priority a declaration may start with"
    USER = "one person, @mentioned; the value is their user id"
    NUMBER = "a whole number of up to six digits"
    NAME = "one word, as typed: a name the store looks up (a schedule)"
    TIME = "a local time, YYYY-MM-DD HH:MM, read by the store"
    SPAN = "a stretch of time, from and to, each YYYY-MM-DD HH:MM, read by the store"
    CODE = "`name=value`, anywhere in the text"
    WORDS = "words to search by: at least one the search can use"
    TEXT = "free text to the end, as typed"


# Shown as a word for what to type: <reason>, or [reason] when it may be left out.
_PLACEHOLDERS = frozenset({Kind.NUMBER, Kind.NAME, Kind.WORDS, Kind.TEXT})
# Take the rest of the text, whether or not they are last.
_TO_THE_END = frozenset({Kind.TIME, Kind.SPAN, Kind.WORDS, Kind.TEXT})


@dataclass(frozen=True)
class Arg:
    """One argument of a form: the name its handler receives it by, and how it is read and shown.
    `refusal`: what a missing or mistyped one is answered with, when not the form's usage."""

    name: str
    kind: Kind
    optional: bool = False
    choices: tuple[str, ...] = ()
    label: str = ""  # what the help shows for the value, when not the kind's own
    default: str | None = None
    refusal: str = ""

    @property
    def usage(self) -> str:
        if self.kind in _PLACEHOLDERS:
            word = self.label or self.name
            return f"[{word}]" if self.optional else f"<{word}>"
        shown = (
            self.label
            or {
                Kind.CHOICE: "|".join(self.choices),
                Kind.PRIORITY: PRIORITY_SPAN,
                Kind.USER: f"@{self.name}",
                Kind.TIME: "YYYY-MM-DD HH:MM",
                Kind.SPAN: "<from> <to>",
                Kind.CODE: "<code>",
            }[self.kind]
        )
        if self.kind is Kind.CODE:
            shown = f"{self.name}={shown}"
        return f"[{shown}]" if self.optional else shown

    def take(self, typed: str, *, last: bool, form: Form) -> tuple[Any, str]:
        """(this argument's value, the text after it) from `typed`, the text where it stands."""
        if self.kind in _TO_THE_END:
            if self.kind in (Kind.TIME, Kind.SPAN) and not typed:
                raise form.refusal()
            if self.kind is Kind.WORDS and not knowledge.words(text.to_plain(typed)):
                raise form.refusal()  # the words a person reads: `R&amp;D` is no search for "amp"
            return typed, ""
        word, rest = (typed, "") if last else _first_word(typed)
        if self.kind is Kind.PRIORITY and self.optional and not _PRIORITY.fullmatch(word):
            return None, typed  # no priority given: the word is the next argument's
        if not word:
            if self.optional:
                return self.default, rest
            raise self._missing(form)
        return self._value(word, form), rest

    def _value(self, word: str, form: Form) -> Any:
        if self.kind is Kind.CHOICE:
            chosen = next((choice for choice in self.choices if choice.lower() == word.lower()), None)
            if chosen is None:
                raise InvalidInput(
                    field=Field.COMMAND, problem=f"unknown {self.name} {word!r}", choices=[*self.choices]
                )
            return chosen
        if self.kind is Kind.NAME:
            return word
        if self.kind is Kind.PRIORITY:
            if word.upper() not in PRIORITIES:  # named as typed, not quoted: a title may follow it
                raise InvalidInput(
                    field=Field.COMMAND, problem=f"unknown priority {word}", choices=[*PRIORITIES]
                )
            return word.upper()
        found = MENTION.fullmatch(word) if self.kind is Kind.USER else _NUMBER.fullmatch(word)
        if found is None:
            raise self._missing(form)
        return found.group(1) if self.kind is Kind.USER else int(word)

    def _missing(self, form: Form) -> InvalidInput:
        if self.refusal:
            return InvalidInput(field=Field.COMMAND, problem=self.refusal)
        if self.kind is Kind.CHOICE:
            return InvalidInput(
                field=Field.COMMAND, problem=f"say which {self.name}", choices=[*self.choices]
            )
        return form.refusal()

    def code(self, typed: str, *, form: Form) -> tuple[str | None, str]:
        """(the value of the last `name=` word, the text without those words) for a CODE argument."""
        word = re.compile(rf"\s*(?<!\S){re.escape(self.name)}=(\S*)", re.IGNORECASE)
        found = word.findall(typed)
        if not found and not self.optional and not form.either:
            raise self._missing(form)
        return (found[-1] if found else self.default), word.sub("", typed).strip()


@dataclass(frozen=True)
class Form:
    """One way to type a command: its own words (the verb, and any word after it that picks this form,
    such as `pir done`), its arguments, and what it does. `either`: its arguments may each be left out,
    but not all of them (the refusal says so); `note` follows the usage in a refusal; `run` is its
    handler when not the command's; `blank` is what the verb alone does instead of reading the form's
    arguments (the help says so)."""

    words: str
    args: tuple[Arg, ...] = ()
    does: str = ""
    who: Who = Who.ANYONE
    note: str = ""
    either: bool = False
    run: Callable[..., Awaitable[Any]] | None = None
    blank: Callable[..., Awaitable[Any]] | None = None

    @property
    def verb(self) -> str:
        return self.words.split()[0]

    @property
    def keyword(self) -> tuple[str, ...]:
        return tuple(self.words.split()[1:])

    @property
    def usage(self) -> str:
        """As the help shows it: the form's words, then each argument's; a word ending in `=` is followed
        by its value directly (`list problem=<key>`)."""
        args = " ".join(arg.usage for arg in self.args)
        return self.words + ("" if self.words.endswith("=") or not args else " ") + args

    @property
    def description(self) -> str:
        return " ".join(part for part in (self.does, "(no text: a form)" if self.blank else "") if part)

    @property
    def shown(self) -> str:
        return f"`/incident {self.usage}`" + (" (either or both)" if self.either else "") + self.note

    def refusal(self) -> InvalidInput:
        return InvalidInput(field=Field.COMMAND, problem=f"usage: {self.shown}")

    def after_words(self, typed: str) -> str | None:
        """What follows this form's own words at the start of `typed`; None when they are not there."""
        rest = typed
        for word in self.keyword:
            if word.endswith("="):
                if not rest.lower().startswith(word.lower()):
                    return None
                rest = rest[len(word) :]
                continue
            first, rest = _first_word(rest)
            if first.lower() != word.lower():
                return None
        return rest.strip()

    def read(self, typed: str) -> dict[str, Any]:
        """{argument name: value} from the text after the form's words, or the refusal a person sees."""
        values: dict[str, Any] = {}
        for arg in self.args:
            if arg.kind is Kind.CODE:
                values[arg.name], typed = arg.code(typed, form=self)
        if self.either and all(value is None for value in values.values()):
            raise self.refusal()
        others = [arg for arg in self.args if arg.kind is not Kind.CODE]
        for position, arg in enumerate(others, start=1):
            values[arg.name], typed = arg.take(typed, last=position == len(others), form=self)
        if typed:
            raise self.refusal()
        return values


@dataclass(frozen=True)
class Invocation:
    """What was typed: `/incident [INC-7] verb rest`, by whom, where."""

    user: str
    channel: str
    verb: str
    rest: str
    ref: str | None
    trigger_id: str
    response_url: str


@dataclass(frozen=True)
class Call:
    """A command on its way to its use case, as a handler receives it (with its arguments' values): what
    was typed, who acts where, the dependencies, and the calls every handler makes, written once."""

    invocation: Invocation
    ctx: UseCaseContext
    deps: Deps

    async def change(self, use_case: Callable[..., Awaitable[C]], *args: Any, **kwargs: Any) -> C:
        """The one write a command makes: `use_case` on the incident it names (handlers/flows.py)."""
        return await flows.change(self.deps, self.ctx, self.invocation.ref, use_case, *args, **kwargs)

    async def incident(self) -> Incident:
        return await flows.read_incident(self.deps, self.ctx, self.invocation.ref)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[tuple[AsyncSession, Incident]]:
        """A read transaction and the incident the command names, for what is read beside it."""
        async with self.deps.db.read() as session:
            yield (
                session,
                await service.find(
                    session, policy=self.deps.policy, ref=self.invocation.ref, channel=self.invocation.channel
                ),
            )

    def public_id(self, change: Change) -> str:
        return self.deps.policy.public_id(change.incident.number)

    def open_form(self, view: dict[str, Any]) -> None:
        """A modal, opened after the ack (the trigger is good for three seconds)."""
        self.deps.spawn(self.deps.slack.open_view(trigger_id=self.invocation.trigger_id, view=view))

    def message(self, template: str, **context: Any) -> Message:
        return self.deps.renderer.message(template, policy=self.deps.policy, **context)


@dataclass(frozen=True)
class Command:
    """A verb, the handler that runs its forms, the forms the help shows with it, and other words for
    it. `also`: forms of this verb that the help shows beside another command."""

    verb: str
    handler: Callable[..., Awaitable[Any]] | None
    forms: tuple[Form, ...]
    aliases: tuple[str, ...] = ()
    also: tuple[Form, ...] = ()

    @classmethod
    def of(
        cls,
        verb: str,
        handler: Callable[..., Awaitable[Any]] | None,
        *forms: Form,
        aliases: tuple[str, ...] = (),
        also: tuple[Form, ...] = (),
    ) -> Command:
        return cls(verb=verb, handler=handler, forms=forms, aliases=aliases, also=also)

    @property
    def parses(self) -> tuple[Form, ...]:
        """The forms this verb reads: its own, wherever the help shows them."""
        return tuple(form for form in (*self.forms, *self.also) if form.verb == self.verb)

    def choose(self, typed: str) -> tuple[Form, str]:
        """The form `typed` (the words after the verb) fits, and the text after that form's words."""
        forms = self.parses
        for form in forms:
            rest = form.after_words(typed) if form.keyword else None
            if rest is not None:
                return form, rest
        plain = [form for form in forms if not form.keyword]
        bare = next((form for form in plain if not form.args), None)
        takes = next((form for form in plain if form.args), None)
        if bare and (not typed or forms == (bare,)):
            return bare, ""
        if takes:
            return takes, typed
        raise InvalidInput(field=Field.COMMAND, problem="usage: " + ", ".join(form.shown for form in forms))

    async def run(self, invocation: Invocation, ctx: UseCaseContext, deps: Deps) -> Message | None:
        """Read what was typed against the forms and run the one it fits; None: answered by a modal."""
        form, rest = self.choose(invocation.rest)
        call = Call(invocation, ctx, deps)
        if form.blank and not rest:
            return await form.blank(call)
        handler = form.run or self.handler
        assert handler is not None  # dispatch() refuses a command without one
        return await handler(call, **form.read(rest))


def _first_word(typed: str) -> tuple[str, str]:
    words = typed.split(maxsplit=1)
    return (words[0] if words else "", words[1] if len(words) > 1 else "")


# One inner tuple per line of the help.
Grammar = tuple[tuple[Command, ...], ...]


def commands(grammar: Grammar) -> Iterator[Command]:
    for line in grammar:
        yield from line


def dispatch(grammar: Grammar) -> dict[str, Callable[..., Awaitable[Any]]]:
    """{verb or alias: the command's `run`}; a verb without a handler, in the table twice, or with forms
    that could not be told apart is a mistake in the table."""
    table: dict[str, Callable[..., Awaitable[Any]]] = {}
    for command in commands(grammar):
        for word in (command.verb, *command.aliases):
            if not callable(command.handler):
                raise TypeError(f"/incident {word} has no handler")
            if word in table:
                raise ValueError(f"/incident {word} is in the command table twice")
            table[word] = command.run
        plain = [form for form in command.parses if not form.keyword]
        if sum(1 for form in plain if form.args) > 1 or sum(1 for form in plain if not form.args) > 1:
            raise ValueError(f"/incident {command.verb} has two forms that read the same words")
    return table
