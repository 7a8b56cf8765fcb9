"""Settings, built from the environment and app.yaml into typed, validated, frozen objects.

Nothing here runs at import time: `load_settings(environ)` does the reading, and every problem is
reported with the key it concerns, all at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger

from bot.config_schedules import read_schedules, schedule_references
from bot.logs import LEVELS
from handlers.web import DEFAULT_AUTHORIZE_URL, WebSettings
from store.policy import (
    AUTO_RESOLVE_CODES,
    IMPACTS,
    PRIORITIES,
    SCHEDULE,
    URGENCIES,
    AlertPolicy,
    AlertRoute,
    EscalationLevel,
    Policy,
    PriorityPolicy,
)
from store.rota import Schedule

DEFAULT_DATABASE_URL = "sqlite:///./tocsin.db"
DEFAULT_CONFIG = "./app.yaml"
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SLACK_ID = re.compile(r"[UWSCG][A-Z0-9]{2,}")
_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_NAME_FIELDS = {"number", "slug", "prefix"}
_ALERT_TOKEN = re.compile(r"[\x21-\x7e]{16,}")  # printable ASCII, no spaces: it travels in a header
_CALENDAR_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,}")  # a URL's unreserved characters
# The shipped app.yaml's made-up ids (C0123ANNOUNCE, U0123ONCALL, S0123TIER1, ...): left in, they page nobody.
PLACEHOLDER = re.compile(r"[CGUWS]0123[A-Z0-9]+")
_KINDS = {"C": "channel", "G": "channel", "U": "user", "W": "user", "S": "usergroup"}


class ConfigError(Exception):
    """Configuration is unusable; `problems` has one line per problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    policy: Policy
    bot_token: str
    signing_secret: str
    app_token: str | None
    slack_api_url: str | None
    database_url: str
    config_path: Path
    alert_token: str | None = None  # TOCSIN_ALERT_TOKEN; None: the /alerts/* endpoints are off
    log_level: str = "INFO"  # TOCSIN_LOG_LEVEL, one of bot.logs.LEVELS
    calendar_token: str | None = None  # TOCSIN_CALENDAR_TOKEN; None: the calendar feed is off
    quota_scale: float = 1.0  # TOCSIN_SLACK_QUOTA_SCALE: times Slack's published Web API quotas
    web: WebSettings | None = None  # SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, TOCSIN_PUBLIC_URL; None: off


@dataclass(frozen=True)
class SlackReference:
    """A channel, user or user group id that app.yaml names, and where."""

    path: str  # e.g. escalation.levels[1].notify[0]
    id: str
    kind: str  # "channel", "user" or "usergroup"


def parse_duration(value: Any) -> timedelta | None:
    """`90s`, `15m`, `4h`, `2d`, `1w`, or combinations in that order, largest first, such as `1h30m` or
    `2w3d`; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value.strip())
    if not value.strip() or match is None:
        return None
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    return total if total >= timedelta(seconds=1) else None


class _Reader:
    """Walks the YAML tree, collecting problems with their key paths instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, node: Any, path: str, known: set[str] | None = None) -> Mapping[str, Any]:
        if not isinstance(node, dict):
            self.problem(path, f"must be a mapping, not {_show(node)}")
            return {}
        for key in node:
            if known is not None and key not in known:
                self.problem(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key (expected one of {', '.join(sorted(known))})",
                )
        return node

    def required(self, node: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in node:
            self.problem(_join(path, key), "is required")
        return node.get(key)

    def duration(
        self, node: Mapping[str, Any], key: str, path: str, default: timedelta | None = None
    ) -> timedelta:
        if key not in node and default is not None:
            return default
        value = self.required(node, key, path)
        parsed = parse_duration(value)
        if parsed is None:
            if key in node:
                self.problem(_join(path, key), f"{_show(value)} is not a duration (use 90s, 15m, 4h or 2d)")
            return default or timedelta(seconds=1)
        return parsed

    def boolean(self, node: Mapping[str, Any], key: str, path: str, default: bool | None = None) -> bool:
        if key not in node and default is not None:
            return default
        value = self.required(node, key, path)
        if not isinstance(value, bool):
            if key in node:
                self.problem(_join(path, key), f"{_show(value)} is not true or false")
            return bool(default)
        return value

    def string(
        self,
        node: Mapping[str, Any],
        key: str,
        path: str,
        pattern: re.Pattern[str] | None = None,
        default: str | None = None,
        what: str = "a string",
    ) -> str:
        if key not in node and default is not None:
            return default
        value = self.required(node, key, path)
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)):
            if key in node:
                self.problem(_join(path, key), f"{_show(value)} is not {what}")
            return default or ""
        return value

    def strings(
        self,
        node: Mapping[str, Any],
        key: str,
        path: str,
        pattern: re.Pattern[str],
        what: str,
        allow_empty: bool = False,
        unique: bool = True,
    ) -> tuple[str, ...]:
        value = node.get(key, [] if allow_empty else None)
        if not isinstance(value, list) or (not value and not allow_empty):
            self.problem(_join(path, key), f"must be a {'' if allow_empty else 'non-empty '}list of {what}")
            return ()
        good = []
        for index, item in enumerate(value):
            if isinstance(item, str) and pattern.fullmatch(item):
                good.append(item)
            else:
                self.problem(f"{_join(path, key)}[{index}]", f"{_show(item)} is not {what}")
        if unique and len(set(good)) != len(good):
            self.problem(_join(path, key), "has duplicates")
        return tuple(good)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    return (
        '""'
        if value == ""
        else "nothing"
        if value is None
        else f'"{value}"'
        if isinstance(value, str)
        else str(value)
    )


TOP_KEYS = {
    "incident_prefix",
    "default_priority",
    "timezone",
    "channels",
    "priorities",
    "priority_matrix",
    "sla",
    "schedules",
    "escalation",
    "categories",
    "codes",
    "pir",
    "permissions",
    "scheduler",
    "reports",
    "alerts",
    "closure",
    "timeline",
    "status_page",
}


def parse_policy(raw: Any) -> Policy:
    """Validate app.yaml's content, one section at a time; raise ConfigError listing every problem, in
    the order the sections are read here."""
    r = _Reader()
    top = r.mapping(raw, "", TOP_KEYS) if raw is not None else {}
    if raw is None:
        r.problem("app.yaml", "is empty")
    basics = _basics(r, top)
    channels = _channels(r, top.get("channels", {}), "channels")
    priorities = _priorities(r, r.required(top, "priorities", ""), "priorities")
    matrix = _priority_matrix(r, r.required(top, "priority_matrix", ""), "priority_matrix")
    warn_at = _sla(r, top.get("sla", {}), "sla")
    schedules = read_schedules(r, top.get("schedules"), "schedules", basics.timezone)
    escalation = _escalation(r, r.required(top, "escalation", ""), "escalation", schedules)
    categories = _categories(r, top)
    codes = _codes(r, r.required(top, "codes", ""), "codes")
    pir = _pir(r, top.get("pir", {}), "pir")
    admins = _permissions(r, top.get("permissions", {}), "permissions")
    tick = _scheduler(r, top.get("scheduler", {}), "scheduler")
    digest = _reports(r, top.get("reports") or {}, "reports", basics.timezone)
    alerts = _alerts(r, top.get("alerts"), "alerts", categories, codes, basics.default_priority)
    closure = _closure(r, top.get("closure") or {}, "closure")
    capture_emoji, ack_emoji = _timeline(r, top.get("timeline") or {}, "timeline")
    status_enabled, status_public = _status_page(r, top.get("status_page") or {}, "status_page")
    if r.problems:
        raise ConfigError(r.problems)
    return Policy(
        incident_prefix=basics.prefix,
        default_priority=basics.default_priority,
        timezone=basics.timezone,
        announce_channel=channels.announce,
        leadership_channel=channels.leadership,
        per_incident=channels.per_incident,
        name_template=channels.name_template,
        priorities=priorities,
        priority_matrix=matrix,
        warn_at=warn_at,
        repeat_every=escalation.repeat_every,
        escalation_levels=escalation.levels,
        direct_message=escalation.direct_message,
        categories=categories or ("other",),
        cause_codes=codes.cause,
        resolution_codes=codes.resolution,
        pir_due_after=pir.due_after,
        pir_remind_every=pir.remind_every,
        admins=admins,
        tick=tick,
        digest_channel=digest.channel,
        digest_cron=digest.cron,
        alerts=alerts,
        auto_close_after=closure.auto_close_after,
        require_confirmation=closure.require_confirmation,
        capture_emoji=capture_emoji,
        ack_emoji=ack_emoji,
        status_page_enabled=status_enabled,
        status_page_public=status_public,
        schedules=schedules,
    )


# Each section of app.yaml is read by one function below: it takes the section's raw node, the reader
# that collects problems and the section's key path, and returns the section's part of the Policy.

_PRIORITY = re.compile("|".join(PRIORITIES))
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
_TARGET = re.compile(rf"{_SLACK_ID.pattern}|{re.escape(SCHEDULE)}.+")  # who an escalation level pages
_TARGET_WHAT = f"a user (U...), user group (S...) or channel (C...) id, or {SCHEDULE}<name>"


class _Basics(NamedTuple):
    prefix: str
    default_priority: str
    timezone: ZoneInfo


class _Channels(NamedTuple):
    announce: str | None
    leadership: str | None
    per_incident: bool
    name_template: str


class _Escalation(NamedTuple):
    repeat_every: timedelta
    levels: tuple[EscalationLevel, ...]
    direct_message: bool


class _Codes(NamedTuple):
    cause: tuple[str, ...]
    resolution: tuple[str, ...]


class _Pir(NamedTuple):
    due_after: timedelta
    remind_every: timedelta


class _Digest(NamedTuple):
    channel: str | None = None
    cron: str | None = None


class _Closure(NamedTuple):
    auto_close_after: timedelta | None
    require_confirmation: bool


def _basics(r: _Reader, top: Mapping[str, Any]) -> _Basics:
    """The top-level scalars: incident_prefix, default_priority and timezone."""
    prefix = r.string(
        top, "incident_prefix", "", re.compile(r"[A-Z][A-Z0-9]{0,9}"), "INC", "1-10 capital letters or digits"
    )
    default_priority = r.string(top, "default_priority", "", _PRIORITY, "P3", "one of P1-P4")
    tz_name = r.string(top, "timezone", "", default="UTC")
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as "America"
        r.problem("timezone", f'"{tz_name}" is not a time zone (e.g. UTC, Europe/Paris)')
        timezone = ZoneInfo("UTC")
    return _Basics(prefix, default_priority, timezone)


def _channels(r: _Reader, raw: Any, path: str) -> _Channels:
    node = r.mapping(raw, path, {"announce", "leadership", "per_incident", "name_template"})
    announce, leadership = (
        r.string(node, key, path, _CHANNEL_ID, what="a channel id (C...)")
        if node.get(key) is not None
        else None
        for key in ("announce", "leadership")
    )
    per_incident = r.boolean(node, "per_incident", path, True)
    name_template = r.string(node, "name_template", path, default="inc-{number}-{slug}")
    fields = set(re.findall(r"{(\w*)}", name_template))
    if "number" not in fields or not fields <= _NAME_FIELDS:
        r.problem(
            _join(path, "name_template"),
            f'"{name_template}" must contain {{number}} and only {{number}}, {{slug}}, {{prefix}}',
        )
    return _Channels(announce, leadership, per_incident, name_template)


def _priorities(r: _Reader, raw: Any, path: str) -> Mapping[str, PriorityPolicy]:
    node = r.mapping(raw, path, set(PRIORITIES))
    priorities: dict[str, PriorityPolicy] = {}
    for name in PRIORITIES:
        if name not in node:
            r.problem(f"{path}.{name}", "is required")
        else:
            priorities[name] = _priority(r, node[name], f"{path}.{name}")
    return MappingProxyType(priorities)


def _priority(r: _Reader, raw: Any, path: str) -> PriorityPolicy:
    node = r.mapping(
        raw, path, {"response", "resolution", "update_every", "pir_required", "notify_leadership"}
    )
    policy = PriorityPolicy(
        response=r.duration(node, "response", path),
        resolution=r.duration(node, "resolution", path),
        update_every=r.duration(node, "update_every", path),
        pir_required=r.boolean(node, "pir_required", path, False),
        notify_leadership=r.boolean(node, "notify_leadership", path, False),
    )
    if policy.response > policy.resolution:
        r.problem(path, "response target is longer than the resolution target")
    return policy


def _priority_matrix(r: _Reader, raw: Any, path: str) -> Mapping[str, Mapping[str, str]]:
    node = r.mapping(raw, path, set(IMPACTS))
    matrix: dict[str, Mapping[str, str]] = {}
    for impact in IMPACTS:
        row_path = f"{path}.{impact}"
        row = r.mapping(node.get(impact), row_path, set(URGENCIES))
        matrix[impact] = MappingProxyType(
            {
                urgency: r.string(row, urgency, row_path, _PRIORITY, "P4", "one of P1-P4") if row else "P4"
                for urgency in URGENCIES
            }
        )
    return MappingProxyType(matrix)


def _sla(r: _Reader, raw: Any, path: str) -> float:
    node = r.mapping(raw, path, {"warn_at"})
    warn_at = node.get("warn_at", 0.75)
    if isinstance(warn_at, bool) or not isinstance(warn_at, int | float) or not 0 < warn_at < 1:
        r.problem(_join(path, "warn_at"), f"{_show(warn_at)} is not a share between 0 and 1 (e.g. 0.75)")
        return 0.75
    return float(warn_at)


def _escalation(r: _Reader, raw: Any, path: str, schedules: Mapping[str, Schedule]) -> _Escalation:
    node = r.mapping(raw, path, {"repeat_every", "levels", "direct_message"})
    repeat_every = r.duration(node, "repeat_every", path, timedelta(minutes=10))
    direct_message = r.boolean(node, "direct_message", path, True)
    raw_levels = node.get("levels")
    if not isinstance(raw_levels, list) or not raw_levels:
        r.problem(_join(path, "levels"), "must be a non-empty list of levels")
        raw_levels = []
    levels = tuple(
        _escalation_level(r, item, f"{path}.levels[{index}]", first=index == 0, schedules=schedules)
        for index, item in enumerate(raw_levels)
    )
    return _Escalation(repeat_every, levels, direct_message)


def _escalation_level(
    r: _Reader, raw: Any, path: str, *, first: bool, schedules: Mapping[str, Schedule]
) -> EscalationLevel:
    node = r.mapping(raw, path, {"name", "notify", "after"})
    notify = r.strings(node, "notify", path, _TARGET, _TARGET_WHAT)
    for index, target in enumerate(_list(node.get("notify"))):
        name = target.removeprefix(SCHEDULE) if isinstance(target, str) else target
        if name != target and name and name not in schedules:  # `schedule:` alone is refused above
            known = f"schedules: {', '.join(schedules)}" if schedules else "app.yaml has no schedules"
            r.problem(f"{path}.notify[{index}]", f'there is no schedule "{name}" ({known})')
    return EscalationLevel(
        name=r.string(node, "name", path),
        notify=notify,
        after=r.duration(node, "after", path) if not first or "after" in node else None,
    )


def _categories(r: _Reader, top: Mapping[str, Any]) -> tuple[str, ...]:
    return r.strings(
        top, "categories", "", re.compile(r"[a-z0-9][a-z0-9_ -]{0,63}"), "a lowercase category name"
    )


def _codes(r: _Reader, raw: Any, path: str) -> _Codes:
    node = r.mapping(raw, path, {"cause", "resolution"})
    return _Codes(
        cause=r.strings(node, "cause", path, _CODE, "a lowercase code"),
        resolution=r.strings(node, "resolution", path, _CODE, "a lowercase code"),
    )


def _pir(r: _Reader, raw: Any, path: str) -> _Pir:
    node = r.mapping(raw, path, {"due_after", "remind_every"})
    return _Pir(
        due_after=r.duration(node, "due_after", path, timedelta(days=5)),
        remind_every=r.duration(node, "remind_every", path, timedelta(days=1)),
    )


def _permissions(r: _Reader, raw: Any, path: str) -> frozenset[str]:
    node = r.mapping(raw, path, {"admins"})
    user_id = re.compile(r"[UW][A-Z0-9]{2,}")
    return frozenset(r.strings(node, "admins", path, user_id, "a user id (U...)", allow_empty=True))


def _scheduler(r: _Reader, raw: Any, path: str) -> timedelta:
    node = r.mapping(raw, path, {"tick"})
    return r.duration(node, "tick", path, timedelta(seconds=30))


def _reports(r: _Reader, raw: Any, path: str, timezone: ZoneInfo) -> _Digest:
    node = r.mapping(raw, path, {"digest"})
    if node.get("digest") is None:
        return _Digest()
    digest_path = _join(path, "digest")
    digest = r.mapping(node["digest"], digest_path, {"channel", "cron"})
    channel = r.string(digest, "channel", digest_path, _CHANNEL_ID, what="a channel id (C...)")
    cron = r.string(digest, "cron", digest_path, default="0 9 * * MON")
    try:
        CronTrigger.from_crontab(cron, timezone=timezone)
    except ValueError as error:
        r.problem(_join(digest_path, "cron"), f'"{cron}" is not a crontab schedule ({error})')
    return _Digest(channel, cron)


def _alerts(
    r: _Reader,
    raw: Any,
    path: str,
    categories: tuple[str, ...],
    codes: _Codes,
    default_priority: str,
) -> AlertPolicy:
    """Label routes to a priority and category, the priority when none matches, and auto_resolve."""
    node = r.mapping(raw if raw is not None else {}, path, {"routes", "default_priority", "auto_resolve"})
    raw_routes = node.get("routes", [])
    if not isinstance(raw_routes, list):
        r.problem(_join(path, "routes"), f"must be a list of routes, not {_show(raw_routes)}")
        raw_routes = []
    routes = [
        _alert_route(r, item, f"{path}.routes[{index}]", categories) for index, item in enumerate(raw_routes)
    ]
    auto_resolve = r.boolean(node, "auto_resolve", path, False)
    cause, resolution = AUTO_RESOLVE_CODES
    if auto_resolve and (cause not in codes.cause or resolution not in codes.resolution):
        r.problem(
            _join(path, "auto_resolve"),
            f'needs cause code "{cause}" in codes.cause and resolution code "{resolution}" in codes.resolution',
        )
    return AlertPolicy(
        routes=tuple(route for route in routes if route is not None),
        default_priority=r.string(
            node, "default_priority", path, _PRIORITY, default_priority, "one of P1-P4"
        ),
        auto_resolve=auto_resolve,
    )


def _alert_route(r: _Reader, raw: Any, path: str, categories: tuple[str, ...]) -> AlertRoute | None:
    """One of alerts.routes; None when it is not even a mapping (a problem is recorded)."""
    route = r.mapping(raw, path, {"match", "priority", "category"})
    if not isinstance(raw, dict):
        return None
    match = r.mapping(r.required(route, "match", path) or {}, f"{path}.match")
    if isinstance(route.get("match"), dict) and not match:
        r.problem(f"{path}.match", "must name at least one label, e.g. {severity: critical}")
    for label, value in match.items():
        if not isinstance(label, str) or not isinstance(value, str):
            r.problem(f"{path}.match.{label}", f'{_show(value)} is not a string (quote it: "{value}")')
    category = route.get("category")
    if category is not None and category not in categories:
        r.problem(
            f"{path}.category", f"{_show(category)} is not one of the categories ({', '.join(categories)})"
        )
    return AlertRoute(
        match=MappingProxyType({str(k): str(v) for k, v in match.items()}),
        priority=r.string(route, "priority", path, _PRIORITY, what="one of P1-P4"),
        category=category if isinstance(category, str) else None,
    )


def _closure(r: _Reader, raw: Any, path: str) -> _Closure:
    node = r.mapping(raw, path, {"auto_close_after", "require_confirmation"})
    return _Closure(
        auto_close_after=(
            r.duration(node, "auto_close_after", path)
            if node.get("auto_close_after") is not None
            else None  # absent: resolved incidents wait for someone to close them
        ),
        require_confirmation=r.boolean(node, "require_confirmation", path, False),
    )


_EMOJI = re.compile(r"[a-z0-9_+'-]{1,100}(::skin-tone-[2-6])?")
EMOJI_NAME = "an emoji name as Slack writes it, without colons (e.g. pushpin)"


def _timeline(r: _Reader, raw: Any, path: str) -> tuple[tuple[str, ...], str | None]:
    """The reactions that capture a message into its incident's timeline, and Tocsin's own reaction
    that confirms it (null: none)."""
    node = r.mapping(raw, path, {"capture_emoji", "ack_emoji"})
    capture = (
        r.strings(node, "capture_emoji", path, _EMOJI, EMOJI_NAME)
        if "capture_emoji" in node
        else ("pushpin", "memo")
    )
    if "ack_emoji" in node and node["ack_emoji"] is None:
        return capture, None
    return capture, r.string(node, "ack_emoji", path, _EMOJI, "white_check_mark", what=EMOJI_NAME)


def _status_page(r: _Reader, raw: Any, path: str) -> tuple[bool, bool]:
    """`/status`, for stakeholders: on or off, and whether it needs a Slack sign-in."""
    node = r.mapping(raw, path, {"enabled", "public"})
    return r.boolean(node, "enabled", path, False), r.boolean(node, "public", path, False)


def slack_references(document: Any) -> list[SlackReference]:
    """Every channel, user and user group id in app.yaml's content, in file order, with its key path."""
    top = _mapping(document)
    found: list[tuple[str, Any]] = [
        ("channels.announce", _mapping(top.get("channels")).get("announce")),
        ("channels.leadership", _mapping(top.get("channels")).get("leadership")),
        *schedule_references(top.get("schedules")),
    ]
    for i, level in enumerate(_list(_mapping(top.get("escalation")).get("levels"))):
        found += [
            (f"escalation.levels[{i}].notify[{j}]", t)
            for j, t in enumerate(_list(_mapping(level).get("notify")))
        ]
    found += [
        (f"permissions.admins[{i}]", a)
        for i, a in enumerate(_list(_mapping(top.get("permissions")).get("admins")))
    ]
    found.append(
        ("reports.digest.channel", _mapping(_mapping(top.get("reports")).get("digest")).get("channel"))
    )
    return [
        SlackReference(path=path, id=value, kind=_KINDS[value[0]])
        for path, value in found
        if isinstance(value, str) and value[:1] in _KINDS
    ]


def placeholders(references: list[SlackReference]) -> list[str]:
    """A warning for each id that looks like one of the shipped app.yaml's placeholders."""
    return [
        f'{reference.path}: "{reference.id}" looks like a placeholder from the shipped app.yaml: '
        f"replace it with a real {reference.kind.replace('usergroup', 'user group')} id"
        for reference in references
        if PLACEHOLDER.fullmatch(reference.id)
    ]


def _mapping(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, dict) else {}


def _list(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []


def find_config(environ: Mapping[str, str], given: str | None = None) -> Path:
    """The app.yaml to read: `given` (check-config's argument), else TOCSIN_CONFIG, else ./app.yaml."""
    if given or environ.get("TOCSIN_CONFIG"):
        return Path(given or environ["TOCSIN_CONFIG"])
    path = Path(DEFAULT_CONFIG)
    if not path.exists():
        raise ConfigError(
            [
                f"TOCSIN_CONFIG: is not set, and there is no {path} in {Path.cwd()} "
                "(set TOCSIN_CONFIG to the path of your app.yaml)"
            ]
        )
    return path


def read_document(path: Path) -> Any:
    """app.yaml's content. Refuses, naming the file, one that cannot be read, is not YAML or is empty,
    and, naming the key and its lines, a key given twice in one mapping (PyYAML would keep the last)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise ConfigError([f"{path}: cannot be read ({reason or error})"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            duplicates: list[str] = []
            _find_duplicates(node, "", duplicates, set())
            if duplicates:
                raise ConfigError(duplicates)
        document = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: is not valid YAML{where}"]) from None
    except RecursionError:  # PyYAML composes and constructs recursively
        raise ConfigError([f"{path}: is nested too deeply to be an app.yaml"]) from None
    finally:
        loader.dispose()
    if document is None:
        raise ConfigError(
            [
                f"{path}: is empty (it must set at least priorities, priority_matrix, escalation, categories and codes)"
            ]
        )
    return document


def _find_duplicates(node: yaml.Node, path: str, problems: list[str], seen: set[int]) -> None:
    if id(node) in seen:  # an alias: its node was walked where its anchor is
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[tuple[str, str], int] = {}  # (tag, text) -> line
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` merges keys that the mapping itself may override
            where = _join(path, key.value)
            line = key.start_mark.line + 1
            if (key.tag, key.value) in keys:
                first = keys[(key.tag, key.value)]
                lines = f"both on line {line}" if first == line else f"at lines {first} and {line}"
                problems.append(f"{where}: is given twice, {lines} (keep one)")
            keys.setdefault((key.tag, key.value), line)
            _find_duplicates(value, where, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicates(item, f"{path}[{index}]", problems, seen)


def load_policy(path: Path) -> Policy:
    return parse_policy(read_document(path))


def load_settings(environ: Mapping[str, str], *, mode: str = "http") -> Settings:
    """Settings for `mode` "http" (needs the signing secret), "socket" (needs the app token), "worker"
    (the bot token only) or "store" (operator commands that only read the database: no Slack credentials needed)."""
    problems = [f"{name}: is not set" for name in _NEEDS.get(mode, []) if not environ.get(name, "").strip()]
    api_url = _slack_api_url(environ, problems)
    database_url = _database_url(environ, problems)
    log_level = _log_level(environ, problems)
    alert_token = _alert_token(environ, problems)
    calendar_token = _calendar_token(environ, problems)
    quota_scale = _quota_scale(environ, problems)
    web = _web(environ, problems)
    policy, config_path = None, Path(DEFAULT_CONFIG)
    try:
        config_path = find_config(environ)
        policy = load_policy(config_path)
    except ConfigError as error:
        problems.extend(error.problems)
    if problems or policy is None:
        raise ConfigError(problems)
    return Settings(
        policy=policy,
        bot_token=environ.get("SLACK_BOT_TOKEN", "").strip(),
        signing_secret=environ.get("SLACK_SIGNING_SECRET", "").strip(),
        app_token=environ.get("SLACK_APP_TOKEN", "").strip() or None,
        slack_api_url=api_url,
        database_url=database_url,
        config_path=config_path,
        alert_token=alert_token,
        log_level=log_level,
        calendar_token=calendar_token,
        quota_scale=quota_scale,
        web=web,
    )


# The Slack credentials each mode of load_settings needs.
_NEEDS = {
    "http": ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"],
    "socket": ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"],
    "worker": ["SLACK_BOT_TOKEN"],
}

# Each environment variable below is read by one function: it appends its problem, if any, to
# `problems` and returns the value Settings keeps.


def _slack_api_url(environ: Mapping[str, str], problems: list[str]) -> str | None:
    api_url = environ.get("SLACK_API_URL") or None
    if api_url and not re.match(r"https?://", api_url):
        problems.append(f'SLACK_API_URL: "{api_url}" is not an http(s) URL')
    if api_url and not api_url.endswith("/"):
        api_url += "/"
    return api_url


def _quota_scale(environ: Mapping[str, str], problems: list[str]) -> float:
    """Slack grants some apps more than its published quotas; an app that shares a workspace with
    busy ones may want less."""
    raw = environ.get("TOCSIN_SLACK_QUOTA_SCALE", "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = 0.0
    if not 0.01 <= scale <= 1000:
        problems.append(
            f'TOCSIN_SLACK_QUOTA_SCALE: "{raw}" is not a number from 0.01 to 1000 (1: Slack\'s quotas)'
        )
        return 1.0
    return scale


def _database_url(environ: Mapping[str, str], problems: list[str]) -> str:
    database_url = environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    scheme = database_url.partition("://")[0]
    if scheme in ("postgresql", "postgres"):  # the usual spelling; Tocsin drives PostgreSQL with asyncpg
        return "postgresql+asyncpg" + database_url[len(scheme) :]
    if scheme not in ("sqlite", "sqlite+aiosqlite", "postgresql+asyncpg"):
        problems.append(
            "DATABASE_URL: must start with sqlite:// (e.g. sqlite:///./tocsin.db) or postgresql:// "
            "(e.g. postgresql://user:password@host/db)"
        )
    return database_url


def _log_level(environ: Mapping[str, str], problems: list[str]) -> str:
    given = environ.get("TOCSIN_LOG_LEVEL", "").strip()
    log_level = given.upper() or "INFO"
    if log_level not in LEVELS:
        problems.append(f'TOCSIN_LOG_LEVEL: "{given}" is not one of {", ".join(LEVELS)}')
    return log_level


def _token(
    environ: Mapping[str, str], problems: list[str], name: str, pattern: re.Pattern[str], needs: str
) -> str | None:
    """A shared secret from the environment (None: unset), or the problem naming what it must be."""
    token = environ.get(name, "").strip() or None
    if token is not None and not pattern.fullmatch(token):
        problems.append(f"{name}: must be {needs}; e.g. the output of `openssl rand -hex 32`)")
    return token


def _alert_token(environ: Mapping[str, str], problems: list[str]) -> str | None:
    needs = "at least 16 printable characters without spaces (a bearer token"
    return _token(environ, problems, "TOCSIN_ALERT_TOKEN", _ALERT_TOKEN, needs)


def _calendar_token(environ: Mapping[str, str], problems: list[str]) -> str | None:
    """Calendar apps subscribe to a feed by its URL alone, so the token travels in the URL."""
    needs = "at least 16 letters, digits, -, _, . or ~ (it goes in the calendar feed's URL"
    return _token(environ, problems, "TOCSIN_CALENDAR_TOKEN", _CALENDAR_TOKEN, needs)


WEB_NEEDS = ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "TOCSIN_PUBLIC_URL")


def _web(environ: Mapping[str, str], problems: list[str]) -> WebSettings | None:
    """Sign in with Slack's credentials and the address people reach Tocsin at: all three or none (the
    web view is off); only some of them is a mistake, not a choice."""
    given = {name: environ.get(name, "").strip() for name in WEB_NEEDS}
    authorize_url = environ.get("SLACK_AUTHORIZE_URL", "").strip() or DEFAULT_AUTHORIZE_URL
    authorize_problem = _url_problem(authorize_url, root=False)
    if authorize_problem:
        problems.append(f'SLACK_AUTHORIZE_URL: "{authorize_url}" {authorize_problem}')
    if not any(given.values()):
        return None
    before = len(problems)
    for name in WEB_NEEDS:
        if not given[name]:
            problems.append(
                f"{name}: is not set (the web view needs {', '.join(WEB_NEEDS[:-1])} and {WEB_NEEDS[-1]}; "
                "set all three, or none to leave it off)"
            )
    public_url = given["TOCSIN_PUBLIC_URL"].rstrip("/")
    problem = _url_problem(public_url, root=True) if public_url else None
    if problem:
        problems.append(f'TOCSIN_PUBLIC_URL: "{given["TOCSIN_PUBLIC_URL"]}" {problem}')
    if len(problems) > before:
        return None
    return WebSettings(
        client_id=given["SLACK_CLIENT_ID"],
        client_secret=given["SLACK_CLIENT_SECRET"],
        public_url=public_url,
        authorize_url=authorize_url,
    )


def _url_problem(url: str, *, root: bool) -> str | None:
    """What is wrong with an http(s) URL; `root`: it must be a site's address, with no path (the web
    view's pages and its sign-in callback are at the root of the address people reach Tocsin at)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is no number raises ValueError
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "is not an http(s) URL (e.g. https://tocsin.example.com)"
    if root and (parts.path not in ("", "/") or parts.query or parts.fragment):
        return "must be the site's address without a path (e.g. https://tocsin.example.com)"
    return None
