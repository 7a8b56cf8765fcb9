"""One Jinja2 environment over templates/, with filters for Slack mrkdwn, times and mentions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from handlers import text as user_text
from store import timeline
from store.machine import STATUS_ACTIONS, Action


class TemplatesMissing(Exception):
    """This installation of Tocsin lacks its message templates."""


def _installed_templates() -> Path:
    """templates/, installed as the package handlers.templates (pyproject.toml maps it): found the same
    way in a wheel and in an editable install (`pip install -e .`)."""
    try:
        return Path(str(files("handlers.templates")))
    except ModuleNotFoundError:  # an install without them: check_templates() names where they belong
        return Path(__file__).resolve().parent / "templates"


TEMPLATES = _installed_templates()


def check_templates(directory: Path = TEMPLATES) -> None:
    """Called at start-up: without its templates, Tocsin would start and then fail every message."""
    if not directory.is_dir() or not any(directory.glob("*.j2")):
        raise TemplatesMissing(
            f"no message templates in {directory}: this installation of Tocsin is incomplete "
            "(reinstall it, e.g. `pip install .` from the source tree)"
        )


STATE_EMOJI = {
    "triage": ":rotating_light:",
    "investigating": ":mag:",
    "identified": ":dart:",
    "monitoring": ":eyes:",
    "resolved": ":white_check_mark:",
    "closed": ":lock:",
    "cancelled": ":no_entry_sign:",
}
PRIORITY_EMOJI = {
    "P1": ":red_circle:",
    "P2": ":large_orange_circle:",
    "P3": ":large_yellow_circle:",
    "P4": ":white_circle:",
}


@dataclass(frozen=True)
class Message:
    """What Slack shows: a plain-text fallback and optional Block Kit blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def mrkdwn(value: Any, limit: int | None = None) -> str:
    """Text for Slack mrkdwn, user text and Tocsin's own alike (handlers/text.py): nothing escaped twice,
    typed mentions and links live, `@channel`, `@here` and user groups inert; `limit` clips safely."""
    return user_text.to_mrkdwn(value, limit)


def mention(target: str | None) -> str:
    if not target:
        return "nobody"
    if target.startswith("S"):
        return f"<!subteam^{target}>"
    if target[:1] in ("C", "G"):
        return f"<#{target}>"
    if target == "tocsin":
        return "Tocsin"
    return f"<@{target}>"


def named_mention(target: str | None, names: dict[str, str]) -> str:
    """A mention that also carries the person's display name, where it is known: Slack shows the live
    mention, and a reader of the raw text (a notification, a log, an export) still sees who it was."""
    name = names.get(target) if target and user_text.USER_ID.fullmatch(target) else None
    if not name or name == target:
        return mention(target)
    return f"<@{target}|{user_text.escape(name)}>"


def duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    if seconds < 0:
        return "-" + duration(-value)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


# What a person types for each state change: the timeline and refusals speak in these words.
COMMAND_WORDS: dict[str, str] = {
    **{action.value: action.value for action in Action},
    **{action.value: f"status {word}" for word, action in STATUS_ACTIONS.items()},
}


def command_words(action: str) -> str:
    """`monitor` -> `status monitoring`; a word that is already a command (`pir done`) stays."""
    return COMMAND_WORDS.get(action, action)


_OWNER = re.compile(r"([UW][A-Z0-9_]+): (.*)", re.DOTALL)


def describe_entry(entry: Any) -> str:
    """One timeline row in words, as stored text with people as `<@U…>` mentions: shown through `mrkdwn`
    in Slack, through `md` in the review document."""
    kind, before, after, text = entry.kind, entry.from_value, entry.to_value, entry.text
    match kind:
        case "declared":
            return f"declared: {text}"
        case "update":
            return f"stakeholder update: {text}"
        case timeline.NOTE:
            return f"note{' (edited)' if entry.edited_at else ''}: {text}"
        case timeline.CAPTURED:
            return f"said{_captured_details(entry)}: {text}"
        case timeline.EDITED | timeline.REMOVED:
            what = _ENTRY_WORDS.get(before or "", "a timeline entry")
            return f"{'edited' if kind == timeline.EDITED else 'removed'} {what}; it said: {text}"
        case timeline.UNCAPTURED:
            return f"took a captured message off the timeline; it said: {text}"
        case "priority":
            return f"priority {before} → {after}"
        case "role":
            return f"{text} → {mention(after)}" + (f" (was {mention(before)})" if before else "")
        case "escalation":
            return (
                f"paged level {after}" + (" again" if before == after else "") + (f": {text}" if text else "")
            )
        case "paged_on_call":
            return (
                f"paged {mention(after)}, on call for {before}"
                if after
                else f"nobody on call for {before} to page"
            )
        case "sla_breached":
            return f"{after} SLA breached"
        case "pir":
            return f"post-incident review done: {text}"
        case "pir_scheduled":
            return f"review meeting scheduled for {after}"
        case "action":
            owner = _OWNER.fullmatch(text or "")
            return f"action {after} added: " + (f"{mention(owner[1])}: {owner[2]}" if owner else text)
        case "action_done":
            return f"action {after} done: {text}"
        case "problem":
            return f"linked to problem {text}"
        case "confirmed":
            return "confirmed that service is restored"
        case "recode":
            return f"codes corrected: cause/resolution {before} → {after}"
        case "detected":
            return f"detected: it began at {after}"
        case "alert":
            return (text if text.startswith("alert") else f"alert {text}") if text else f"alert {after}"
        case "status_page_hidden" | "status_page_shown":
            return (
                "kept off the status page" if kind == "status_page_hidden" else "put back on the status page"
            )
    if kind in COMMAND_WORDS:
        return f"{COMMAND_WORDS[kind]} ({before} → {after})" + (f": {text}" if text else "")
    return f"{kind}: {before} → {after}" + (f" ({text})" if text else "")


_ENTRY_WORDS = {timeline.NOTE: "a note", timeline.CAPTURED: "a captured message"}


def _captured_details(entry: Any) -> str:
    """A captured message's link, whether it was edited and its files, before its text: the timeline
    clips a long line at its end."""
    names = ", ".join(user_text.escape(name) for name in entry.files or [])  # as Slack gave them: raw
    details = [
        *([f"<{user_text.escape(entry.permalink)}|message>"] if entry.permalink else []),
        *(["edited"] if entry.edited_at else []),
        *([f"files: {names}"] if names else []),
    ]
    return f" ({', '.join(details)})" if details else ""


def local(value: datetime | None, zone: ZoneInfo) -> str:
    """`Mon 2026-12-07 09:00 GMT`: a moment on a schedule's own clock, which may not be Tocsin's."""
    if value is None:
        return "-"
    at = value.astimezone(zone)
    return f"{at:%a} {at.year:04d}-{at.month:02d}-{at.day:02d} {at.hour:02d}:{at.minute:02d} {at.tzname()}"


def truncate_text(value: str, limit: int) -> str:
    """At most `limit` characters, never cut inside markup (`<@U1>`) or an entity (`&amp;`)."""
    if len(value) <= limit:
        return value
    cut = value[: limit - 1]
    opened, ampersand = cut.rfind("<"), cut.rfind("&")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    if ampersand > cut.rfind(";") and ampersand > len(cut) - 5:
        cut = cut[:ampersand]
    return cut + "…"


_MILESTONES = (  # after declaration, in the order they happen
    ("Acknowledged", "acknowledged_at"),
    ("Identified", "identified_at"),
    ("Mitigated", "mitigated_at"),
    ("Resolved", "resolved_at"),
    ("Confirmed", "confirmed_at"),
    ("Closed", "closed_at"),
    ("Cancelled", "cancelled_at"),
)


class Renderer:
    def __init__(self, *, timezone: ZoneInfo, directory: Path = TEMPLATES) -> None:
        self.timezone = timezone
        self.env = Environment(
            loader=FileSystemLoader(str(directory)),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,  # templates are compiled once per process, not checked on disk per message
            cache_size=-1,
        )
        # No template uses Jinja's default globals (range, dict, namespace, ...): without them, no render
        # merges them into its context.
        self.env.globals.clear()
        self.env.filters.update(
            # Templates render JSON that is parsed straight back (Renderer.json), never HTML: Jinja's own
            # tojson also escapes <, >, & and ' for HTML and wraps the result in Markup, for nothing.
            tojson=json.dumps,
            mrkdwn=mrkdwn,
            plain=user_text.to_plain,
            literal=user_text.literal,
            md=user_text.to_markdown,
            person=user_text.person,
            utc=lambda value: value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-",
            mention=mention,
            named_mention=named_mention,
            duration=duration,
            when=self.when,
            local=local,
            milestones=self.milestones,
            clip=truncate_text,
            describe_entry=describe_entry,
            seconds=lambda n: timedelta(seconds=int(n or 0)),
            state_emoji=lambda s: STATE_EMOJI.get(str(s), ""),
            priority_emoji=lambda p: PRIORITY_EMOJI.get(str(p), ""),
        )

    def milestones(self, incident: Any) -> str:
        """An incident's milestones as mrkdwn lines, each with its time and the time since declaration.
        Built here, not in a Jinja macro: the macro's list and loop were a third of `show`'s render."""
        declared = incident.declared_at
        lines = []
        if incident.detected_at:
            before = duration(declared - incident.detected_at)
            lines.append(f"*Detected* {self.when(incident.detected_at)} ({before} before it was declared)")
        lines.append(f"*Declared* {self.when(declared)}")
        for label, key in _MILESTONES:
            at = getattr(incident, key)
            if at:
                lines.append(f"*{label}* {self.when(at)} (+{duration(at - declared)})")
        return "\n".join(lines)

    def when(self, value: datetime | None) -> str:
        """`2026-11-23 14:05 CET`: strftime's "%Y-%m-%d %H:%M %Z", at half its cost (four times per card)."""
        if value is None:
            return "-"
        at = value.astimezone(self.timezone)
        return f"{at.year:04d}-{at.month:02d}-{at.day:02d} {at.hour:02d}:{at.minute:02d} {at.tzname()}"

    def span(self, start: datetime, end: datetime, zone: ZoneInfo) -> str:
        return f"from {local(start, zone)} to {local(end, zone)}"

    def text(self, name: str, **context: Any) -> str:
        try:
            template = self.env.get_template(name)
        except TemplateNotFound:
            # Jinja's TemplateNotFound is an OSError, which handlers answer as "the database cannot be
            # reached": a missing file is this installation's fault, and must read as one.
            raise TemplatesMissing(f"the message template {name} is missing from {TEMPLATES}") from None
        return template.render(**context).strip()

    def json(self, name: str, **context: Any) -> Any:
        rendered = self.text(name, **context)
        try:
            return json.loads(rendered)
        except json.JSONDecodeError as error:
            raise ValueError(f"template {name} did not render JSON ({error}):\n{rendered}") from None

    def message(self, name: str, **context: Any) -> Message:
        data = self.json(name, **context)
        return Message(text=data["text"], blocks=data.get("blocks", []))
