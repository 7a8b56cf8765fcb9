"""app.yaml's `schedules`: the on-call rotas of store/rota.py, read into Policy.schedules by parse_policy.

Each problem is recorded on bot.config's reader with its key path, like every other section's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from store.rota import DAYS, Layer, Schedule, Window

if TYPE_CHECKING:  # bot.config imports this module and hands it its reader, so only mypy looks back
    from bot.config import _Reader

SCHEDULE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,23}")
_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")  # as store.rota.parse_local reads one
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
_USERGROUP_ID = re.compile(r"S[A-Z0-9]{2,}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_HOURS = re.compile(r"(\d{1,2}):(\d\d)-(\d{1,2}):(\d\d)")
_WHOLE_DAY = (time(0), time(0))


def read_schedules(r: _Reader, raw: Any, path: str, timezone: ZoneInfo) -> Mapping[str, Schedule]:
    """The schedules by name; `timezone` (the top-level one) is the default of each. A schedule whose
    content has problems is still returned under its name, so that `schedule:<name>` in escalation is
    checked against every schedule given, not only the flawless ones."""
    node = r.mapping(raw if raw is not None else {}, path)
    schedules: dict[str, Schedule] = {}
    for name, item in node.items():
        where = f"{path}.{name}"
        named = isinstance(name, str) and SCHEDULE_NAME.fullmatch(name) is not None
        if not named:
            r.problem(
                where,
                "is not a schedule name: use 1-24 lowercase letters, digits, - and _, "
                "starting with a letter or digit",
            )
        schedule = _schedule(r, item, where, str(name), timezone)
        if named:
            schedules[str(name)] = schedule
    return MappingProxyType(schedules)


def schedule_references(raw: Any) -> list[tuple[str, Any]]:
    """Each Slack id the `schedules` section names, with its key path, in file order (for
    bot.config.slack_references: nothing here is validated)."""
    found: list[tuple[str, Any]] = []
    for name, schedule in _mapping(raw).items():
        node, where = _mapping(schedule), f"schedules.{name}"
        found += [(f"{where}.channel", node.get("channel")), (f"{where}.usergroup", node.get("usergroup"))]
        for i, layer in enumerate(_list(node.get("layers"))):
            found += [
                (f"{where}.layers[{i}].participants[{j}]", user)
                for j, user in enumerate(_list(_mapping(layer).get("participants")))
            ]
    return found


def _schedule(r: _Reader, raw: Any, path: str, name: str, default_zone: ZoneInfo) -> Schedule:
    node = r.mapping(raw, path, {"timezone", "channel", "usergroup", "layers"})
    if not isinstance(raw, dict):
        return Schedule(name=name, timezone=default_zone, layers=())
    zone = _zone(r, node, path, default_zone)
    channel, usergroup = (
        (r.string(node, key, path, pattern, what=what) or None) if node.get(key) is not None else None
        for key, pattern, what in (
            ("channel", _CHANNEL_ID, "a channel id (C...)"),
            ("usergroup", _USERGROUP_ID, "a user group id (S...)"),
        )
    )
    raw_layers = node.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        r.problem(f"{path}.layers", "must be a non-empty list of layers")
        raw_layers = []
    layers = [_layer(r, item, f"{path}.layers[{index}]", zone) for index, item in enumerate(raw_layers)]
    first: dict[str, int] = {}  # layer name -> the index of the first layer so named
    for index, layer in enumerate(layers):
        if layer is not None and layer.name in first:
            r.problem(
                f"{path}.layers[{index}].name",
                f'"{layer.name}" is already the name of layers[{first[layer.name]}] (names are unique)',
            )
        elif layer is not None and layer.name:
            first[layer.name] = index
    return Schedule(
        name=name,
        timezone=zone,
        layers=tuple(layer for layer in layers if layer is not None),
        channel=channel,
        usergroup=usergroup,
    )


def _zone(r: _Reader, node: Mapping[str, Any], path: str, default: ZoneInfo) -> ZoneInfo:
    if node.get("timezone") is None:
        return default
    name = r.string(node, "timezone", path, what="a time zone (e.g. UTC, Europe/Paris)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as "America"
        if name:  # else `string` has said what is wrong
            r.problem(f"{path}.timezone", f'"{name}" is not a time zone (e.g. UTC, Europe/Paris)')
        return default


def _layer(r: _Reader, raw: Any, path: str, zone: ZoneInfo) -> Layer | None:
    """One of a schedule's layers; None when it is not even a mapping (a problem is recorded)."""
    node = r.mapping(raw, path, {"name", "participants", "shift", "start", "only"})
    if not isinstance(raw, dict):
        return None
    return Layer(
        name=r.string(node, "name", path, what="a non-empty string"),
        # someone listed twice takes two shifts of each round: [U1, U1, U2] is two weeks on, one off
        participants=r.strings(node, "participants", path, _USER_ID, "a user id (U...)", unique=False),
        shift=r.duration(node, "shift", path),
        start=_start(r, node, path, zone),
        only=_window(r, node["only"], f"{path}.only") if node.get("only") is not None else None,
    )


def _start(r: _Reader, node: Mapping[str, Any], path: str, zone: ZoneInfo) -> datetime:
    """A hand-off on the schedule's wall clock. YAML reads an unquoted `2026-12-07 09:00:00` as a
    datetime and `2026-12-07` as a date (its midnight); one given with an offset is moved onto the
    schedule's clock."""
    value = r.required(node, "start", path)
    if isinstance(value, datetime):
        return value.astimezone(zone).replace(tzinfo=None) if value.tzinfo is not None else value
    if isinstance(value, date):
        return datetime.combine(value, time(0))
    if isinstance(value, str) and _START.fullmatch(value.strip()):
        try:
            return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M")
        except ValueError:  # a month 13, a 25th hour, ...
            pass
    if "start" in node:
        r.problem(f"{path}.start", 'must be "YYYY-MM-DD HH:MM" in the schedule\'s timezone')
    return datetime(1970, 1, 1)  # never used: a problem is recorded, so parse_policy raises


def _window(r: _Reader, raw: Any, path: str) -> Window:
    """A layer's `only`: the days (every day when absent) and the hours (the whole day when absent)."""
    node = r.mapping(raw, path, {"days", "hours"})
    if isinstance(raw, dict) and "days" not in node and "hours" not in node:
        r.problem(path, 'must set days, hours or both (e.g. {days: [mon-fri], hours: "09:00-17:00"})')
    days = _days(r, node["days"], f"{path}.days") if "days" in node else frozenset(range(7))
    start, end = _hours(r, node["hours"], f"{path}.hours") if "hours" in node else _WHOLE_DAY
    return Window(days=days, start=start, end=end)


def _days(r: _Reader, raw: Any, path: str) -> frozenset[int]:
    """`mon`, `mon-fri` (a range may wrap past Sunday: `fri-mon`), or a list of those."""
    if isinstance(raw, str):
        items = [(path, raw)]
    elif isinstance(raw, list) and raw:
        items = [(f"{path}[{index}]", item) for index, item in enumerate(raw)]
    else:
        r.problem(path, "must be a day, a range of days or a non-empty list of them (e.g. [mon-fri, sun])")
        return frozenset(range(7))
    days: set[int] = set()
    for where, item in items:
        found = _day_range(item)
        if found is None:
            r.problem(where, f"must be one of {', '.join(DAYS)}, or a range of them such as mon-fri")
        days |= found or set()
    return frozenset(days)


def _day_range(item: Any) -> set[int] | None:
    if not isinstance(item, str):
        return None
    ends = [part.strip().lower() for part in item.split("-")]
    if len(ends) > 2 or any(end not in DAYS for end in ends):
        return None
    first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
    return {(first + step) % 7 for step in range((last - first) % 7 + 1)}


def _hours(r: _Reader, raw: Any, path: str) -> tuple[time, time]:
    """`HH:MM-HH:MM`; an end at or before the start runs overnight, and an end of 24:00 is midnight."""
    match = _HOURS.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is not None:
        start_hour, start_minute, end_hour, end_minute = (int(part) for part in match.groups())
        end_is_good = end_hour < 24 or (end_hour, end_minute) == (24, 0)
        if start_hour < 24 and start_minute < 60 and end_minute < 60 and end_is_good:
            return time(start_hour, start_minute), time(end_hour % 24, end_minute)
    r.problem(path, 'must be "HH:MM-HH:MM" (e.g. "09:00-17:00", "22:00-06:00" overnight, "18:00-24:00")')
    return _WHOLE_DAY


def _mapping(node: Any) -> Mapping[str, Any]:
    return node if isinstance(node, dict) else {}


def _list(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []
