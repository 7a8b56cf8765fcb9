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
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger

from bot.logs import LEVELS
from store.policy import (
    AUTO_RESOLVE_CODES,
    IMPACTS,
    PRIORITIES,
    URGENCIES,
    AlertPolicy,
    AlertRoute,
    EscalationLevel,
    Policy,
    PriorityPolicy,
)

DEFAULT_DATABASE_URL = "sqlite:///./tocsin.db"
DEFAULT_CONFIG = "./app.yaml"
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SLACK_ID = re.compile(r"[UWSCG][A-Z0-9]{2,}")
_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_NAME_FIELDS = {"number", "slug", "prefix"}
_ALERT_TOKEN = re.compile(r"[\x21-\x7e]{16,}")  # printable ASCII, no spaces: it travels in a header
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


@dataclass(frozen=True)
class SlackReference:
    """A channel, user or user group id that app.yaml names, and where."""

    path: str  # e.g. escalation.levels[1].notify[0]
    id: str
    kind: str  # "channel", "user" or "usergroup"


def parse_duration(value: Any) -> timedelta | None:
    """`90s`, `15m`, `4h`, `2d`, or combinations such as `1h30m`; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str):
        return None
    match = _DURATION.fullmatch(value.strip())
    if not value.strip() or match is None:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
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
        if len(set(good)) != len(good):
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
    "escalation",
    "categories",
    "codes",
    "pir",
    "permissions",
    "scheduler",
    "reports",
    "alerts",
    "closure",
}


def parse_policy(raw: Any) -> Policy:
    """Validate app.yaml's content; raise ConfigError listing every problem."""
    r = _Reader()
    top = r.mapping(raw, "", TOP_KEYS) if raw is not None else {}
    if raw is None:
        r.problem("app.yaml", "is empty")
    prefix = r.string(
        top, "incident_prefix", "", re.compile(r"[A-Z][A-Z0-9]{0,9}"), "INC", "1-10 capital letters or digits"
    )
    default_priority = r.string(
        top, "default_priority", "", re.compile("|".join(PRIORITIES)), "P3", "one of P1-P4"
    )
    tz_name = r.string(top, "timezone", "", default="UTC")
    try:
        timezone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        r.problem("timezone", f'"{tz_name}" is not a time zone (e.g. UTC, Europe/Paris)')
        timezone = ZoneInfo("UTC")

    channels = r.mapping(
        top.get("channels", {}), "channels", {"announce", "leadership", "per_incident", "name_template"}
    )
    channel_id = re.compile(r"[CG][A-Z0-9]{2,}")
    announce = (
        r.string(channels, "announce", "channels", channel_id, what="a channel id (C...)")
        if "announce" in channels and channels["announce"] is not None
        else None
    )
    leadership = (
        r.string(channels, "leadership", "channels", channel_id, what="a channel id (C...)")
        if "leadership" in channels and channels["leadership"] is not None
        else None
    )
    per_incident = r.boolean(channels, "per_incident", "channels", True)
    name_template = r.string(channels, "name_template", "channels", default="inc-{number}-{slug}")
    fields = set(re.findall(r"{(\w*)}", name_template))
    if "number" not in fields or not fields <= _NAME_FIELDS:
        r.problem(
            "channels.name_template",
            f'"{name_template}" must contain {{number}} and only {{number}}, {{slug}}, {{prefix}}',
        )

    priorities: dict[str, PriorityPolicy] = {}
    pnode = r.mapping(r.required(top, "priorities", ""), "priorities", set(PRIORITIES))
    for name in PRIORITIES:
        path = f"priorities.{name}"
        if name not in pnode:
            r.problem(path, "is required")
            continue
        node = r.mapping(
            pnode[name], path, {"response", "resolution", "update_every", "pir_required", "notify_leadership"}
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
        priorities[name] = policy

    matrix: dict[str, dict[str, str]] = {}
    mnode = r.mapping(r.required(top, "priority_matrix", ""), "priority_matrix", set(IMPACTS))
    for impact in IMPACTS:
        row = r.mapping(mnode.get(impact), f"priority_matrix.{impact}", set(URGENCIES))
        matrix[impact] = {}
        for urgency in URGENCIES:
            matrix[impact][urgency] = (
                r.string(
                    row,
                    urgency,
                    f"priority_matrix.{impact}",
                    re.compile("|".join(PRIORITIES)),
                    "P4" if row else None,
                    "one of P1-P4",
                )
                if row
                else "P4"
            )

    sla = r.mapping(top.get("sla", {}), "sla", {"warn_at"})
    warn_at = sla.get("warn_at", 0.75)
    if isinstance(warn_at, bool) or not isinstance(warn_at, int | float) or not 0 < warn_at < 1:
        r.problem("sla.warn_at", f"{_show(warn_at)} is not a share between 0 and 1 (e.g. 0.75)")
        warn_at = 0.75

    esc = r.mapping(
        r.required(top, "escalation", ""), "escalation", {"repeat_every", "levels", "direct_message"}
    )
    repeat_every = r.duration(esc, "repeat_every", "escalation", timedelta(minutes=10))
    direct_message = r.boolean(esc, "direct_message", "escalation", True)
    levels: list[EscalationLevel] = []
    raw_levels = esc.get("levels")
    if not isinstance(raw_levels, list) or not raw_levels:
        r.problem("escalation.levels", "must be a non-empty list of levels")
        raw_levels = []
    for index, item in enumerate(raw_levels):
        path = f"escalation.levels[{index}]"
        node = r.mapping(item, path, {"name", "notify", "after"})
        name = r.string(node, "name", path)
        notify = r.strings(
            node, "notify", path, _SLACK_ID, "a user (U...), user group (S...) or channel (C...) id"
        )
        after = r.duration(node, "after", path) if index > 0 or "after" in node else None
        levels.append(EscalationLevel(name=name, notify=notify, after=after))

    categories = r.strings(
        top, "categories", "", re.compile(r"[a-z0-9][a-z0-9_ -]{0,63}"), "a lowercase category name"
    )
    codes = r.mapping(r.required(top, "codes", ""), "codes", {"cause", "resolution"})
    cause_codes = r.strings(codes, "cause", "codes", _CODE, "a lowercase code")
    resolution_codes = r.strings(codes, "resolution", "codes", _CODE, "a lowercase code")
    pir = r.mapping(top.get("pir", {}), "pir", {"due_after", "remind_every"})
    permissions = r.mapping(top.get("permissions", {}), "permissions", {"admins"})
    admins = r.strings(
        permissions,
        "admins",
        "permissions",
        re.compile(r"[UW][A-Z0-9]{2,}"),
        "a user id (U...)",
        allow_empty=True,
    )
    scheduler = r.mapping(top.get("scheduler", {}), "scheduler", {"tick"})
    tick = r.duration(scheduler, "tick", "scheduler", timedelta(seconds=30))
    reports = r.mapping(top.get("reports") or {}, "reports", {"digest"})
    digest_channel = digest_cron = None
    if reports.get("digest") is not None:
        digest = r.mapping(reports["digest"], "reports.digest", {"channel", "cron"})
        digest_channel = r.string(digest, "channel", "reports.digest", channel_id, what="a channel id (C...)")
        digest_cron = r.string(digest, "cron", "reports.digest", default="0 9 * * MON")
        try:
            CronTrigger.from_crontab(digest_cron, timezone=timezone)
        except ValueError as error:
            r.problem("reports.digest.cron", f'"{digest_cron}" is not a crontab schedule ({error})')

    alerts = _alert_policy(r, top.get("alerts"), categories, cause_codes, resolution_codes, default_priority)
    closure = r.mapping(top.get("closure") or {}, "closure", {"auto_close_after", "require_confirmation"})

    result = Policy(
        incident_prefix=prefix,
        default_priority=default_priority,
        timezone=timezone,
        announce_channel=announce,
        leadership_channel=leadership,
        per_incident=per_incident,
        name_template=name_template,
        priorities=MappingProxyType(priorities),
        priority_matrix=MappingProxyType({k: MappingProxyType(v) for k, v in matrix.items()}),
        warn_at=float(warn_at),
        repeat_every=repeat_every,
        escalation_levels=tuple(levels),
        direct_message=direct_message,
        categories=categories or ("other",),
        cause_codes=cause_codes,
        resolution_codes=resolution_codes,
        pir_due_after=r.duration(pir, "due_after", "pir", timedelta(days=5)),
        pir_remind_every=r.duration(pir, "remind_every", "pir", timedelta(days=1)),
        admins=frozenset(admins),
        tick=tick,
        digest_channel=digest_channel,
        digest_cron=digest_cron,
        alerts=alerts,
        auto_close_after=(
            r.duration(closure, "auto_close_after", "closure")
            if closure.get("auto_close_after") is not None
            else None  # absent: resolved incidents wait for someone to close them
        ),
        require_confirmation=r.boolean(closure, "require_confirmation", "closure", False),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return result


def _alert_policy(
    r: _Reader,
    raw: Any,
    categories: tuple[str, ...],
    cause_codes: tuple[str, ...],
    resolution_codes: tuple[str, ...],
    default_priority: str,
) -> AlertPolicy:
    """app.yaml's `alerts`: label routes to a priority and category, the default, and auto_resolve."""
    node = r.mapping(raw if raw is not None else {}, "alerts", {"routes", "default_priority", "auto_resolve"})
    priority = re.compile("|".join(PRIORITIES))
    raw_routes = node.get("routes", [])
    if not isinstance(raw_routes, list):
        r.problem("alerts.routes", f"must be a list of routes, not {_show(raw_routes)}")
        raw_routes = []
    routes = []
    for index, item in enumerate(raw_routes):
        path = f"alerts.routes[{index}]"
        route = r.mapping(item, path, {"match", "priority", "category"})
        if not isinstance(item, dict):
            continue
        match = r.mapping(r.required(route, "match", path) or {}, f"{path}.match")
        if isinstance(route.get("match"), dict) and not match:
            r.problem(f"{path}.match", "must name at least one label, e.g. {severity: critical}")
        for label, value in match.items():
            if not isinstance(label, str) or not isinstance(value, str):
                r.problem(f"{path}.match.{label}", f'{_show(value)} is not a string (quote it: "{value}")')
        category = route.get("category")
        if category is not None and category not in categories:
            r.problem(
                f"{path}.category",
                f"{_show(category)} is not one of the categories ({', '.join(categories)})",
            )
        routes.append(
            AlertRoute(
                match=MappingProxyType({str(k): str(v) for k, v in match.items()}),
                priority=r.string(route, "priority", path, priority, what="one of P1-P4"),
                category=category if isinstance(category, str) else None,
            )
        )
    auto_resolve = r.boolean(node, "auto_resolve", "alerts", False)
    cause, resolution = AUTO_RESOLVE_CODES
    if auto_resolve and (cause not in cause_codes or resolution not in resolution_codes):
        r.problem(
            "alerts.auto_resolve",
            f'needs cause code "{cause}" in codes.cause and resolution code "{resolution}" in codes.resolution',
        )
    return AlertPolicy(
        routes=tuple(routes),
        default_priority=r.string(
            node, "default_priority", "alerts", priority, default_priority, "one of P1-P4"
        ),
        auto_resolve=auto_resolve,
    )


def slack_references(document: Any) -> list[SlackReference]:
    """Every channel, user and user group id in app.yaml's content, in file order, with its key path."""
    top = _mapping(document)
    found: list[tuple[str, Any]] = [
        ("channels.announce", _mapping(top.get("channels")).get("announce")),
        ("channels.leadership", _mapping(top.get("channels")).get("leadership")),
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
    problems: list[str] = []
    need = {
        "http": ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"],
        "socket": ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"],
        "worker": ["SLACK_BOT_TOKEN"],
    }.get(mode, [])
    for name in need:
        if not environ.get(name, "").strip():
            problems.append(f"{name}: is not set")
    api_url = environ.get("SLACK_API_URL") or None
    if api_url and not re.match(r"https?://", api_url):
        problems.append(f'SLACK_API_URL: "{api_url}" is not an http(s) URL')
    if api_url and not api_url.endswith("/"):
        api_url += "/"
    database_url = environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    scheme = database_url.partition("://")[0]
    if scheme in ("postgresql", "postgres"):  # the usual spelling; Tocsin drives PostgreSQL with asyncpg
        database_url = "postgresql+asyncpg" + database_url[len(scheme) :]
    elif scheme not in ("sqlite", "sqlite+aiosqlite", "postgresql+asyncpg"):
        problems.append(
            "DATABASE_URL: must start with sqlite:// (e.g. sqlite:///./tocsin.db) or postgresql:// "
            "(e.g. postgresql://user:password@host/db)"
        )
    given_level = environ.get("TOCSIN_LOG_LEVEL", "").strip()
    log_level = given_level.upper() or "INFO"
    if log_level not in LEVELS:
        problems.append(f'TOCSIN_LOG_LEVEL: "{given_level}" is not one of {", ".join(LEVELS)}')
    alert_token = environ.get("TOCSIN_ALERT_TOKEN", "").strip() or None
    if alert_token is not None and not _ALERT_TOKEN.fullmatch(alert_token):
        problems.append(
            "TOCSIN_ALERT_TOKEN: must be at least 16 printable characters without spaces "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
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
    )
