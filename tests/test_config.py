"""bot/config.py: DATABASE_URL spellings."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings

BASE = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "TOCSIN_CONFIG": "app.yaml"}


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
