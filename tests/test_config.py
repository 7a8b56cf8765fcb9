"""bot/config.py: the environment's settings and app.yaml as a file, each problem named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import (
    ConfigError,
    load_settings,
    parse_policy,
    placeholders,
    read_document,
    slack_references,
)
from tests.conftest import ROOT, shipped_config
from tests.fakeslack import FakeSlack
from tests.processes import environment, free_port, run

BASE = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TOCSIN_CONFIG": str(ROOT / "app.yaml")}


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (None, "sqlite:///./tocsin.db"),
        ("sqlite:///tmp/t.db", "sqlite:///tmp/t.db"),
        ("sqlite+aiosqlite:///tmp/t.db", "sqlite+aiosqlite:///tmp/t.db"),
        ("postgresql://u:p@db/tocsin", "postgresql+asyncpg://u:p@db/tocsin"),
        ("postgres://u@db/tocsin", "postgresql+asyncpg://u@db/tocsin"),
        ("postgresql+asyncpg://u@db/tocsin", "postgresql+asyncpg://u@db/tocsin"),
    ],
)
def test_database_url_spellings(given: str | None, used: str) -> None:
    environ = BASE | ({"DATABASE_URL": given} if given else {})
    assert load_settings(environ).database_url == used


def test_unsupported_database_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(BASE | {"DATABASE_URL": "mysql://u@db/tocsin"})
    assert any(
        problem.startswith("DATABASE_URL: must start with sqlite://") for problem in caught.value.problems
    )


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("short", True),
        ("has a space in it, 16+", True),
        ("a/slash-in-a-token-0123", True),
        ("0123456789abcdef", False),
        ("calendar.feed_token~2026", False),
    ],
)
def test_the_calendar_token_must_be_long_and_fit_in_a_url(given: str, problem: bool) -> None:
    if not problem:
        assert load_settings(BASE | {"TOCSIN_CALENDAR_TOKEN": given}).calendar_token == given
        return
    with pytest.raises(ConfigError) as caught:
        load_settings(BASE | {"TOCSIN_CALENDAR_TOKEN": given})
    assert caught.value.problems == [
        "TOCSIN_CALENDAR_TOKEN: must be at least 16 letters, digits, -, _, . or ~ "
        "(it goes in the calendar feed's URL; e.g. the output of `openssl rand -hex 32`)"
    ]


@pytest.mark.parametrize("given", [None, "", "  "])
def test_without_a_calendar_token_the_feed_is_off(given: str | None) -> None:
    environ = BASE | ({"TOCSIN_CALENDAR_TOKEN": given} if given is not None else {})
    assert load_settings(environ).calendar_token is None


# ---------------------------------------------------------------- app.yaml as a file


def test_a_key_given_twice_is_refused_naming_it_and_both_lines(tmp_path: Path) -> None:
    text = (ROOT / "app.yaml").read_text()
    text = text.replace("  repeat_every: 10m", "  repeat_every: 10m\n  repeat_every: 5m", 1)
    text = text.replace("{name: Platform on-call,", "{name: Platform on-call, after: 5m,", 1)
    path = tmp_path / "app.yaml"
    path.write_text(text)
    lines = text.splitlines()
    first = lines.index("  repeat_every: 10m")
    level = next(i for i, line in enumerate(lines) if "Platform on-call" in line)
    with pytest.raises(ConfigError) as caught:
        read_document(path)
    assert caught.value.problems == [
        f"escalation.repeat_every: is given twice, at lines {first + 1} and {first + 2} (keep one)",
        f"escalation.levels[1].after: is given twice, both on line {level + 1} (keep one)",
    ]


def test_anchors_and_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("base: &base {a: 1, b: 2}\nfirst: *base\nsecond:\n  <<: *base\n  b: 3\n")
    assert read_document(path) == {
        "base": {"a": 1, "b": 2},
        "first": {"a": 1, "b": 2},
        "second": {"a": 1, "b": 3},
    }


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_an_empty_file_is_named_as_the_file_that_is_empty(tmp_path: Path, text: str) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_document(path)
    assert caught.value.problems == [
        f"{path}: is empty (it must set at least priorities, priority_matrix, escalation, categories and codes)"
    ]


def test_a_deeply_nested_file_is_named_not_a_recursion_traceback(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("priorities: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as caught:
        read_document(path)
    assert caught.value.problems == [f"{path}: is nested too deeply to be an app.yaml"]


def test_without_tocsin_config_or_an_app_yaml_here_tocsin_config_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"})
    assert caught.value.problems == [
        f"TOCSIN_CONFIG: is not set, and there is no app.yaml in {tmp_path} "
        "(set TOCSIN_CONFIG to the path of your app.yaml)"
    ]


@pytest.mark.parametrize(("given", "used"), [(None, "INFO"), ("debug", "DEBUG"), (" WARNING ", "WARNING")])
def test_log_level(given: str | None, used: str) -> None:
    environ = BASE | ({"TOCSIN_LOG_LEVEL": given} if given is not None else {})
    assert load_settings(environ).log_level == used


def test_an_unknown_log_level_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(BASE | {"TOCSIN_LOG_LEVEL": "LOUD"})
    assert caught.value.problems == [
        'TOCSIN_LOG_LEVEL: "LOUD" is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL'
    ]


def test_the_shipped_placeholders_are_found_by_key_path() -> None:
    references = slack_references(yaml.safe_load((ROOT / "app.yaml").read_text()))
    assert [(r.path, r.id, r.kind) for r in references] == [
        ("channels.announce", "C0123ANNOUNCE", "channel"),
        ("channels.leadership", "C0123LEADERS", "channel"),
        ("schedules.platform.channel", "C0123ONCALL", "channel"),
        ("schedules.platform.usergroup", "S0123PLATFORM", "usergroup"),
        ("schedules.platform.layers[0].participants[0]", "U0123ALICE", "user"),
        ("schedules.platform.layers[0].participants[1]", "U0123BOB", "user"),
        ("schedules.platform.layers[0].participants[2]", "U0123CAROL", "user"),
        ("schedules.platform.layers[1].participants[0]", "U0123DAVE", "user"),
        ("escalation.levels[0].notify[0]", "S0123TIER1", "usergroup"),
        ("escalation.levels[1].notify[0]", "U0123ONCALL", "user"),
        ("escalation.levels[2].notify[0]", "U0123MANAGER", "user"),
        ("permissions.admins[0]", "U0123ADMIN", "user"),
    ]
    config = shipped_config()
    config["channels"]["announce"] = "C07QF2M1A"
    config["escalation"]["levels"][1]["notify"] = ["U04ABCD12", "C0123"]
    config["reports"]["digest"] = {"channel": "C0123DIGEST"}
    assert placeholders(slack_references(config)) == [
        'channels.leadership: "C0123LEADERS" looks like a placeholder from the shipped app.yaml: '
        "replace it with a real channel id",
        'escalation.levels[0].notify[0]: "S0123TIER1" looks like a placeholder from the shipped app.yaml: '
        "replace it with a real user group id",
        'escalation.levels[2].notify[0]: "U0123MANAGER" looks like a placeholder from the shipped app.yaml: '
        "replace it with a real user id",
        'permissions.admins[0]: "U0123ADMIN" looks like a placeholder from the shipped app.yaml: '
        "replace it with a real user id",
        'reports.digest.channel: "C0123DIGEST" looks like a placeholder from the shipped app.yaml: '
        "replace it with a real channel id",
    ]


# ---------------------------------------------------------------- through the real command

SERVE_ENV = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}


@pytest.mark.slow
async def test_a_bad_log_level_is_one_line_and_exit_2_not_a_traceback() -> None:
    env = environment(**SERVE_ENV, TOCSIN_CONFIG=str(ROOT / "app.yaml"), TOCSIN_LOG_LEVEL="LOUD")
    code, out, err = await run("serve", "--port", str(free_port()), env=env)
    assert (code, err.splitlines()) == (
        2,
        ['TOCSIN_LOG_LEVEL: "LOUD" is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL'],
    )


@pytest.mark.slow
@pytest.mark.parametrize("case", ["duplicate", "empty"])
async def test_serve_and_check_config_refuse_a_duplicate_key_or_an_empty_file(
    tmp_path: Path, case: str
) -> None:
    path = tmp_path / "app.yaml"
    if case == "duplicate":
        text = (ROOT / "app.yaml").read_text()
        line = text[: text.index("timezone: UTC")].count("\n") + 1
        path.write_text(text.replace("timezone: UTC", "timezone: UTC\ntimezone: Europe/Paris", 1))
        expected = [f"timezone: is given twice, at lines {line} and {line + 1} (keep one)"]
    else:
        path.write_text("# to be written\n")
        expected = [
            f"{path}: is empty (it must set at least priorities, priority_matrix, escalation, categories and codes)"
        ]
    code, out, err = await run("check-config", str(path), env=environment())
    assert (code, err.splitlines(), out) == (2, expected, "")
    code, out, err = await run("serve", env=environment(**SERVE_ENV, TOCSIN_CONFIG=str(path)))
    assert (code, err.splitlines(), out) == (2, expected, "")


@pytest.mark.slow
async def test_check_config_warns_about_the_shipped_placeholders_and_passes() -> None:
    code, out, err = await run("check-config", str(ROOT / "app.yaml"), env=environment())
    assert (code, out) == (0, f"{ROOT / 'app.yaml'}: ok\n")
    assert [line.split(":")[1].strip() for line in err.splitlines()] == [
        "channels.announce",
        "channels.leadership",
        "schedules.platform.channel",
        "schedules.platform.usergroup",
        "schedules.platform.layers[0].participants[0]",
        "schedules.platform.layers[0].participants[1]",
        "schedules.platform.layers[0].participants[2]",
        "schedules.platform.layers[1].participants[0]",
        "escalation.levels[0].notify[0]",
        "escalation.levels[1].notify[0]",
        "escalation.levels[2].notify[0]",
        "permissions.admins[0]",
    ]
    assert err.splitlines()[0] == (
        'warning: channels.announce: "C0123ANNOUNCE" looks like a placeholder from the shipped app.yaml: '
        "replace it with a real channel id"
    )


# ---------------------------------------------------------------- check-config --live


def live_config(tmp_path: Path) -> Path:
    config = shipped_config()
    config["channels"] = {"announce": "C0INCIDENTS", "leadership": "C0LEADERS"}
    config["escalation"]["levels"] = [
        {"name": "Service desk", "notify": ["S0DESK"]},
        {"name": "Platform on-call", "notify": ["U0ONCALL", "C0PAGES"], "after": "15m"},
        {"name": "Incident manager", "notify": ["U0MANAGER"], "after": "30m"},
    ]
    config["permissions"] = {"admins": ["U0ADMIN1"]}
    config["reports"] = {"digest": {"channel": "C0INCIDENTS"}}
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def live_env(fake: FakeSlack, path: Path) -> dict[str, str]:
    return environment(SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL=fake.api_url, TOCSIN_CONFIG=str(path))


@pytest.mark.slow
async def test_check_config_live_names_each_id_slack_does_not_know(tmp_path: Path, fake: FakeSlack) -> None:
    path = live_config(tmp_path)
    fake.add_channel("C0INCIDENTS", "incidents")
    fake.add_channel("C0LEADERS", "leadership").is_archived = True
    fake.add_usergroup("S0DESK", "service-desk", ["U0ONCALL"])
    fake.add_user("U0ONCALL", "olive")
    fake.add_user("U0ADMIN1", "ada")["deleted"] = True
    code, out, err = await run("check-config", "--live", env=live_env(fake, path))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        'channels.leadership: "C0LEADERS" is an archived channel',
        'escalation.levels[1].notify[1]: "C0PAGES" cannot be checked as a channel: Slack answers '
        "channel_not_found (no such channel, or a private channel the bot is not a member of)",
        'escalation.levels[2].notify[0]: "U0MANAGER" cannot be checked as a user: Slack answers '
        "user_not_found (no such user in this workspace)",
        'permissions.admins[0]: "U0ADMIN1" is a deactivated user',
    ]
    asked = [(call.method, call.args) for call in fake.calls]
    assert asked.count(("conversations.info", {"channel": "C0INCIDENTS"})) == 1  # named twice, asked once
    assert [method for method, _ in asked].count("usergroups.list") == 1

    fake.channels["C0LEADERS"].is_archived = False
    fake.add_channel("C0PAGES", "pages")
    fake.add_user("U0MANAGER", "mel")
    fake.users["U0ADMIN1"]["deleted"] = False
    code, out, err = await run("check-config", "--live", env=live_env(fake, path))
    assert (code, err, out) == (0, "", f"{path}: ok, and Slack knows all 7 ids it names\n")


@pytest.mark.slow
async def test_check_config_live_names_a_missing_user_group(tmp_path: Path, fake: FakeSlack) -> None:
    path = live_config(tmp_path)
    for channel in ("C0INCIDENTS", "C0LEADERS", "C0PAGES"):
        fake.add_channel(channel, channel.lower())
    for user in ("U0ONCALL", "U0MANAGER", "U0ADMIN1"):
        fake.add_user(user, user.lower())
    code, out, err = await run("check-config", "--live", env=live_env(fake, path))
    assert (code, err.splitlines()) == (
        2,
        [
            'escalation.levels[0].notify[0]: "S0DESK" is not a user group of this workspace (usergroups.list does not list it)'
        ],
    )


@pytest.mark.slow
async def test_check_config_live_names_a_refused_token_and_an_unreachable_slack(
    tmp_path: Path, fake: FakeSlack
) -> None:
    path = live_config(tmp_path)
    fake.revoke_token("invalid_auth")
    code, out, err = await run("check-config", "--live", env=live_env(fake, path))
    assert (code, err.splitlines()) == (
        2,
        ["SLACK_BOT_TOKEN: Slack refuses it (invalid_auth); set the app's Bot User OAuth Token"],
    )
    env = live_env(fake, path) | {"SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/"}
    code, out, err = await run("check-config", "--live", env=env)
    assert code == 1 and err.startswith("check-config --live: cannot reach Slack to check (")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    code, out, err = await run("check-config", "--live", env=environment(TOCSIN_CONFIG=str(path)))
    assert (code, err.splitlines()) == (2, ["SLACK_BOT_TOKEN: is not set"])


def test_problems_are_listed_section_by_section_each_with_its_key_path() -> None:
    config = shipped_config()
    config["channels"]["name_template"] = "incident"
    config["priorities"]["P2"]["response"] = "9h"
    config["pir"]["due_after"] = "soon"
    config["alerts"]["default_priority"] = "P0"
    config["closure"] = {"auto_close_after": "never", "require_confirmation": "yes"}
    with pytest.raises(ConfigError) as caught:
        parse_policy(config)
    assert caught.value.problems == [
        'channels.name_template: "incident" must contain {number} and only {number}, {slug}, {prefix}',
        "priorities.P2: response target is longer than the resolution target",
        'pir.due_after: "soon" is not a duration (use 90s, 15m, 4h or 2d)',
        'alerts.default_priority: "P0" is not one of P1-P4',
        'closure.auto_close_after: "never" is not a duration (use 90s, 15m, 4h or 2d)',
        'closure.require_confirmation: "yes" is not true or false',
    ]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", ""])
def test_a_timezone_that_is_not_one_is_named(zone: str) -> None:
    config = shipped_config() | {"timezone": zone}
    with pytest.raises(ConfigError) as caught:
        parse_policy(config)
    shown = f'"{zone}" is not a time zone (e.g. UTC, Europe/Paris)' if zone else '"" is not a string'
    assert caught.value.problems == [f"timezone: {shown}"]
