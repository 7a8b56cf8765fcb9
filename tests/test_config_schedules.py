"""bot/config_schedules.py: app.yaml's `schedules`, each problem named by its key path."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.config import ConfigError, parse_duration, parse_policy, placeholders, slack_references
from store.rota import Layer, Schedule, Window
from tests.conftest import ROOT, shipped_config

WEEKDAYS = frozenset(range(5))


def config_with(schedules: Any, notify: list[str] | None = None) -> dict[str, Any]:
    """The shipped app.yaml with these `schedules`, and level 2 notifying `notify` when given."""
    config = shipped_config() | {"schedules": schedules}
    config["escalation"]["levels"][1]["notify"] = notify or ["U0123ONCALL"]
    return config


def problems(schedules: Any, notify: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_policy(config_with(schedules, notify))
    return caught.value.problems


def layer(**given: Any) -> dict[str, Any]:
    return {"name": "weekly", "participants": ["U1AA"], "shift": "1w", "start": "2026-12-07 09:00"} | given


def test_the_shipped_schedule_is_read_into_the_policy() -> None:
    policy = parse_policy(yaml.safe_load((ROOT / "app.yaml").read_text()))
    assert policy.schedules == {
        "platform": Schedule(
            name="platform",
            timezone=ZoneInfo("Europe/London"),
            layers=(
                Layer(
                    name="weekly",
                    participants=("U0123ALICE", "U0123BOB", "U0123CAROL"),
                    shift=timedelta(weeks=1),
                    start=datetime(2026, 12, 7, 9, 0),
                ),
                Layer(
                    name="office hours",
                    participants=("U0123DAVE",),
                    shift=timedelta(days=1),
                    start=datetime(2026, 12, 7, 9, 0),
                    only=Window(days=WEEKDAYS, start=time(9), end=time(17)),
                ),
            ),
            channel="C0123ONCALL",
            usergroup="S0123PLATFORM",
        )
    }
    assert policy.escalation_levels[1].notify == ("U0123ONCALL", "schedule:platform")
    assert policy.escalation_levels[1].schedules == ("platform",)


def test_a_schedule_without_a_timezone_keeps_the_top_level_one_and_channel_and_usergroup_are_optional() -> (
    None
):
    config = config_with({"db": {"layers": [layer()]}}) | {"timezone": "Asia/Tokyo"}
    schedule = parse_policy(config).schedules["db"]
    assert (schedule.timezone, schedule.channel, schedule.usergroup) == (ZoneInfo("Asia/Tokyo"), None, None)
    config["schedules"] = None
    assert parse_policy(config).schedules == {}
    del config["schedules"]
    assert parse_policy(config).schedules == {}


@pytest.mark.parametrize(
    ("given", "shift"),
    [
        ("1w", timedelta(weeks=1)),
        ("2w3d", timedelta(days=17)),
        ("1w12h", timedelta(days=7, hours=12)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_a_shift_is_any_duration_weeks_included(given: str, shift: timedelta) -> None:
    assert parse_duration(given) == shift
    schedule = parse_policy(config_with({"db": {"layers": [layer(shift=given)]}})).schedules["db"]
    assert schedule.layers[0].shift == shift


def test_someone_listed_twice_takes_two_shifts_of_each_round() -> None:
    schedule = {"layers": [layer(participants=["U1AA", "U1AA", "U2BB"])]}
    assert parse_policy(config_with({"db": schedule})).schedules["db"].layers[0].participants == (
        "U1AA",
        "U1AA",
        "U2BB",
    )


def test_weeks_are_a_duration_everywhere() -> None:
    config = shipped_config()
    config["pir"]["due_after"] = "1w"
    assert parse_policy(config).pir_due_after == timedelta(weeks=1)
    assert parse_duration("3d1w") is None  # largest unit first, as with the others


@pytest.mark.parametrize(
    ("only", "window"),
    [
        (
            {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-17:00"},
            (WEEKDAYS, time(9), time(17)),
        ),
        ({"days": "mon-fri"}, (WEEKDAYS, time(0), time(0))),
        ({"days": ["sat", "sun"]}, (frozenset({5, 6}), time(0), time(0))),
        ({"days": ["fri-mon", "wed"]}, (frozenset({4, 5, 6, 0, 2}), time(0), time(0))),
        ({"hours": "22:00-06:00"}, (frozenset(range(7)), time(22), time(6))),
        ({"hours": "18:00-24:00"}, (frozenset(range(7)), time(18), time(0))),
        ({"days": ["Sat"], "hours": "00:00-24:00"}, (frozenset({5}), time(0), time(0))),
    ],
)
def test_only_limits_a_layer_to_days_and_hours(only: dict[str, Any], window: tuple[Any, ...]) -> None:
    schedule = parse_policy(config_with({"db": {"layers": [layer(only=only)]}})).schedules["db"]
    days, start, end = window
    assert schedule.layers[0].only == Window(days=days, start=start, end=end)


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ('"2026-12-07 09:00"', datetime(2026, 12, 7, 9, 0)),
        ("2026-12-07 09:30:00", datetime(2026, 12, 7, 9, 30)),  # YAML reads it as a datetime
        ("2026-12-07", datetime(2026, 12, 7, 0, 0)),  # ... and this as a date: its midnight
        ("2026-07-07T08:00:00Z", datetime(2026, 7, 7, 9, 0)),  # with an offset: onto the schedule's clock
    ],
)
def test_a_start_is_a_string_or_what_yaml_reads_as_a_date(text: str, start: datetime) -> None:
    raw = yaml.safe_load(f"start: {text}")["start"]
    schedule = {"timezone": "Europe/London", "layers": [layer(start=raw)]}
    assert parse_policy(config_with({"db": schedule})).schedules["db"].layers[0].start == start


def test_notify_names_a_schedule_and_one_that_is_not_configured_is_named() -> None:
    policy = parse_policy(config_with({"db": {"layers": [layer()]}}, ["schedule:db", "U0123ONCALL"]))
    assert policy.escalation_levels[1].schedules == ("db",)
    assert problems({"db": {"layers": [layer()]}, "web": {"layers": [layer()]}}, ["schedule:x"]) == [
        'escalation.levels[1].notify[0]: there is no schedule "x" (schedules: db, web)'
    ]
    assert problems(None, ["U0123ONCALL", "schedule:platform"]) == [
        'escalation.levels[1].notify[1]: there is no schedule "platform" (app.yaml has no schedules)'
    ]
    assert problems(None, ["schedule:"]) == [
        'escalation.levels[1].notify[0]: "schedule:" is not a user (U...), user group (S...) or channel (C...) '
        "id, or schedule:<name>"
    ]


def test_a_schedule_is_found_by_notify_even_when_its_content_has_problems() -> None:
    assert problems({"db": {"layers": []}}, ["schedule:db"]) == [
        "schedules.db.layers: must be a non-empty list of layers"
    ]


START = 'must be "YYYY-MM-DD HH:MM" in the schedule\'s timezone'
DAYS = "must be one of mon, tue, wed, thu, fri, sat, sun, or a range of them such as mon-fri"
HOURS = 'must be "HH:MM-HH:MM" (e.g. "09:00-17:00", "22:00-06:00" overnight, "18:00-24:00")'


@pytest.mark.parametrize(
    ("schedules", "expected"),
    [
        ([], ["schedules: must be a mapping, not []"]),
        (
            {"On Call": {"layers": [layer()]}, "x" * 25: {"layers": [layer()]}},
            [
                "schedules.On Call: is not a schedule name: use 1-24 lowercase letters, digits, - and _, "
                "starting with a letter or digit",
                f"schedules.{'x' * 25}: is not a schedule name: use 1-24 lowercase letters, digits, - and _, "
                "starting with a letter or digit",
            ],
        ),
        ({"db": None}, ["schedules.db: must be a mapping, not nothing"]),
        (
            {"db": {"layers": [layer()], "rota": 1}},
            ["schedules.db.rota: unknown key (expected one of channel, layers, timezone, usergroup)"],
        ),
        (
            {"db": {"layers": [layer()], "timezone": "Mars/Olympus"}},
            ['schedules.db.timezone: "Mars/Olympus" is not a time zone (e.g. UTC, Europe/Paris)'],
        ),
        (
            {"db": {"layers": [layer()], "timezone": "America"}},
            ['schedules.db.timezone: "America" is not a time zone (e.g. UTC, Europe/Paris)'],
        ),
        (
            {"db": {"layers": [layer()], "channel": "U1AA", "usergroup": "C1AA"}},
            [
                'schedules.db.channel: "U1AA" is not a channel id (C...)',
                'schedules.db.usergroup: "C1AA" is not a user group id (S...)',
            ],
        ),
        ({"db": {}}, ["schedules.db.layers: must be a non-empty list of layers"]),
        ({"db": {"layers": "weekly"}}, ["schedules.db.layers: must be a non-empty list of layers"]),
        ({"db": {"layers": ["weekly"]}}, ['schedules.db.layers[0]: must be a mapping, not "weekly"']),
    ],
)
def test_each_bad_schedule_is_named_by_its_key_path(schedules: Any, expected: list[str]) -> None:
    assert problems(schedules) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"name": ""}, ['[0].name: "" is not a non-empty string']),
        ({"name": None}, ["[0].name: nothing is not a non-empty string"]),
        ({"participants": []}, ["[0].participants: must be a non-empty list of a user id (U...)"]),
        (
            {"participants": ["U1AA", "S1AA", "alice"]},
            [
                '[0].participants[1]: "S1AA" is not a user id (U...)',
                '[0].participants[2]: "alice" is not a user id (U...)',
            ],
        ),
        ({"start": "2026-12-7 9:00"}, [f"[0].start: {START}"]),
        ({"shift": "weekly"}, ['[0].shift: "weekly" is not a duration (use 90s, 15m, 4h or 2d)']),
        ({"start": "2026-12-07"}, [f"[0].start: {START}"]),
        ({"start": "2026-13-07 09:00"}, [f"[0].start: {START}"]),
        ({"start": "07/12/2026 09:00"}, [f"[0].start: {START}"]),
        ({"start": 1765098000}, [f"[0].start: {START}"]),
        ({"start": None}, [f"[0].start: {START}"]),
        (
            {"rota": "weekly"},
            ["[0].rota: unknown key (expected one of name, only, participants, shift, start)"],
        ),
        (
            {"only": {}},
            ['[0].only: must set days, hours or both (e.g. {days: [mon-fri], hours: "09:00-17:00"})'],
        ),
        ({"only": "weekdays"}, ['[0].only: must be a mapping, not "weekdays"']),
        (
            {"only": {"days": [], "weeks": 1}},
            [
                "[0].only.weeks: unknown key (expected one of days, hours)",
                "[0].only.days: must be a day, a range of days or a non-empty list of them (e.g. [mon-fri, sun])",
            ],
        ),
        (
            {"only": {"days": ["mon", "funday", "mon-tue-wed", 1]}},
            [
                f"[0].only.days[1]: {DAYS}",
                f"[0].only.days[2]: {DAYS}",
                f"[0].only.days[3]: {DAYS}",
            ],
        ),
        ({"only": {"days": "weekdays"}}, [f"[0].only.days: {DAYS}"]),
        ({"only": {"hours": "9-5"}}, [f"[0].only.hours: {HOURS}"]),
        ({"only": {"hours": "09:00-24:30"}}, [f"[0].only.hours: {HOURS}"]),
        ({"only": {"hours": "24:00-06:00"}}, [f"[0].only.hours: {HOURS}"]),
        ({"only": {"hours": "09:60-17:00"}}, [f"[0].only.hours: {HOURS}"]),
        ({"only": {"hours": 540}}, [f"[0].only.hours: {HOURS}"]),
    ],
)
def test_each_bad_layer_is_named_by_its_key_path(given: dict[str, Any], expected: list[str]) -> None:
    assert problems({"db": {"layers": [layer(**given)]}}) == [
        f"schedules.db.layers{line}" for line in expected
    ]


def test_a_missing_layer_key_is_required_and_layer_names_are_unique() -> None:
    assert problems({"db": {"layers": [{"only": {"days": "sat"}}]}}) == [
        "schedules.db.layers[0].name: is required",
        "schedules.db.layers[0].participants: must be a non-empty list of a user id (U...)",
        "schedules.db.layers[0].shift: is required",
        "schedules.db.layers[0].start: is required",
    ]
    assert problems({"db": {"layers": [layer(), layer(), layer(name="other"), layer()]}}) == [
        'schedules.db.layers[1].name: "weekly" is already the name of layers[0] (names are unique)',
        'schedules.db.layers[3].name: "weekly" is already the name of layers[0] (names are unique)',
    ]


def test_every_problem_of_every_schedule_is_listed_at_once() -> None:
    schedules = {
        "db": {"layers": [layer(shift="soon"), layer(name="night", only={"hours": "late"})]},
        "web": {"timezone": "Nowhere", "layers": [layer(participants=["alice"])]},
    }
    assert problems(schedules, ["schedule:api"]) == [
        'schedules.db.layers[0].shift: "soon" is not a duration (use 90s, 15m, 4h or 2d)',
        f"schedules.db.layers[1].only.hours: {HOURS}",
        'schedules.web.timezone: "Nowhere" is not a time zone (e.g. UTC, Europe/Paris)',
        'schedules.web.layers[0].participants[0]: "alice" is not a user id (U...)',
        'escalation.levels[1].notify[0]: there is no schedule "api" (schedules: db, web)',
    ]


def test_slack_references_name_each_schedules_ids_by_key_path() -> None:
    schedules = {
        "db": {
            "channel": "C0DBONCALL",
            "usergroup": "S0123DBA",
            "layers": [
                layer(participants=["U0ALICE", "W0BOB"]),
                layer(name="b", participants=["U0123CAROL"]),
            ],
        },
        "web": {"layers": "not a list"},
    }
    references = slack_references(config_with(schedules, ["schedule:db"]))
    found = [(r.path, r.id, r.kind) for r in references if r.path.startswith("schedules.")]
    assert found == [
        ("schedules.db.channel", "C0DBONCALL", "channel"),
        ("schedules.db.usergroup", "S0123DBA", "usergroup"),
        ("schedules.db.layers[0].participants[0]", "U0ALICE", "user"),
        ("schedules.db.layers[0].participants[1]", "W0BOB", "user"),
        ("schedules.db.layers[1].participants[0]", "U0123CAROL", "user"),
    ]
    assert "schedule:db" not in {r.id for r in references}  # not a Slack id: nothing to check with Slack
    assert [line.split(":")[0] for line in placeholders(references) if line.startswith("schedules.")] == [
        "schedules.db.usergroup",
        "schedules.db.layers[1].participants[0]",
    ]


def test_an_aware_start_keeps_its_moment() -> None:
    moment = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    schedule = {"timezone": "America/New_York", "layers": [layer(start=moment)]}
    start = parse_policy(config_with({"db": schedule})).schedules["db"].layers[0].start
    assert start.replace(tzinfo=ZoneInfo("America/New_York")) == moment
