"""Slack's own description of its Web API, which the fake holds every call against.

`spec/slack-web-api.json` is Slack's OpenAPI 2 description (slackapi/slack-api-specs, MIT, 2020; see
`spec/LICENSE`). Slack has added methods and arguments since; those the bot or slack_sdk use are listed
apart in LATER_METHODS and LATER_ARGUMENTS, each with the page of Slack's documentation that describes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SPEC = Path(__file__).parent / "spec" / "slack-web-api.json"
DOCS = "https://api.slack.com/methods/"


@dataclass(frozen=True)
class Method:
    name: str
    params: frozenset[str]  # every argument the method takes, token excluded
    required: frozenset[str]
    takes_json: bool  # whether Slack reads a JSON body for it (otherwise form or query only)
    doc: str
    types: Mapping[str, str] = field(default_factory=dict)  # argument -> integer, number or boolean


@dataclass(frozen=True)
class Addition:
    """A method Slack added after the 2020 description: its arguments and who must be given."""

    params: frozenset[str]
    required: frozenset[str]
    takes_json: bool = False

    def method(self, name: str) -> Method:
        params = self.params | frozenset(EVERY_METHOD_ARGUMENTS)
        return Method(name, params, self.required, self.takes_json, DOCS + name)


# Methods Slack added after 2020, each described at https://api.slack.com/methods/<name>.
LATER_METHODS: dict[str, Addition] = {
    # Socket Mode: https://api.slack.com/methods/apps.connections.open
    "apps.connections.open": Addition(frozenset(), frozenset()),
    # files_upload_v2, step 1: https://api.slack.com/methods/files.getUploadURLExternal
    "files.getUploadURLExternal": Addition(
        frozenset({"filename", "length", "alt_txt", "snippet_type"}), frozenset({"filename", "length"})
    ),
    # files_upload_v2, step 3: https://api.slack.com/methods/files.completeUploadExternal
    "files.completeUploadExternal": Addition(
        frozenset({"files", "channel_id", "channels", "initial_comment", "thread_ts"}), frozenset({"files"})
    ),
    # Sign in with Slack: https://api.slack.com/methods/openid.connect.token
    "openid.connect.token": Addition(
        frozenset({"client_id", "client_secret", "code", "grant_type", "redirect_uri", "refresh_token"}),
        frozenset({"client_id", "client_secret"}),
    ),
    # Sign in with Slack: https://api.slack.com/methods/openid.connect.userInfo
    "openid.connect.userInfo": Addition(frozenset(), frozenset()),
}

# Arguments Slack added after 2020 to methods the description has: method -> argument -> its docs.
LATER_ARGUMENTS: dict[str, dict[str, str]] = {
    "chat.postMessage": {"metadata": "https://api.slack.com/methods/chat.postMessage"},
    "chat.update": {"metadata": "https://api.slack.com/methods/chat.update"},
    "conversations.history": {"include_all_metadata": "https://api.slack.com/methods/conversations.history"},
    "conversations.replies": {"include_all_metadata": "https://api.slack.com/methods/conversations.replies"},
    "conversations.invite": {"force": "https://api.slack.com/methods/conversations.invite"},
}

# Arguments every method accepts. slack_sdk's client sends `team_id` with every call when it has one, as
# Bolt's per-request client does; Slack reads it for org-wide apps and ignores it for a workspace token.
EVERY_METHOD_ARGUMENTS: dict[str, str] = {"team_id": "https://api.slack.com/enterprise/apps/changes-apis"}


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdecimal())


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# How Slack reads the typed arguments of the description in a form or a JSON body.
CHECKS = {
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda value: value in (True, False, 0, 1, "0", "1", "true", "false"),
}


@cache
def methods() -> Mapping[str, Method]:
    """Every method Slack accepts: the 2020 description with the later additions merged in."""
    spec = json.loads(SPEC.read_text())
    found: dict[str, Method] = {}
    for path, operations in spec["paths"].items():
        name = path.lstrip("/")
        for operation in operations.values():
            params = {p["name"]: p for p in operation.get("parameters", []) if p["name"] != "token"}
            extra = LATER_ARGUMENTS.get(name, {})
            found[name] = Method(
                name=name,
                params=frozenset(params) | frozenset(extra) | frozenset(EVERY_METHOD_ARGUMENTS),
                required=frozenset(n for n, p in params.items() if p.get("required")),
                takes_json="application/json" in operation.get("consumes", []),
                doc=operation.get("externalDocs", {}).get("url", DOCS + name),
                types={n: p["type"] for n, p in params.items() if p.get("type") in CHECKS},
            )
    for name, addition in LATER_METHODS.items():
        if name in found:
            raise AssertionError(f"{name} is in Slack's description; it is no later addition")
        found[name] = addition.method(name)
    for name, extra in LATER_ARGUMENTS.items():
        operations = spec["paths"].get(f"/{name}")
        if operations is None:
            raise AssertionError(f"{name} is not in Slack's description; list it in LATER_METHODS")
        described = {p["name"] for op in operations.values() for p in op.get("parameters", [])}
        if described & set(extra):
            raise AssertionError(
                f"{name}: {sorted(described & set(extra))} already described; no later addition"
            )
    return found


def problems(name: str, args: Mapping[str, Any], *, json_body: bool) -> list[str]:
    """What Slack's description says is wrong with calling `name` with `args` (token already removed)."""
    method = methods().get(name)
    if method is None:
        return [f"{name}: no such Web API method (unknown_method)"]
    found = []
    unknown = sorted(set(args) - method.params)
    if unknown:
        found.append(
            f"{name}: unknown argument(s) {', '.join(unknown)}; it takes {', '.join(sorted(method.params)) or 'none'}"
            f" ({method.doc})"
        )
    missing = sorted(method.required - {k for k, v in args.items() if v not in (None, "")})
    if missing:
        found.append(f"{name}: missing required argument(s) {', '.join(missing)} ({method.doc})")
    for arg, kind in sorted(method.types.items()):
        if arg in args and args[arg] is not None and not CHECKS[kind](args[arg]):
            found.append(
                f"{name}: {arg}={args[arg]!r} is not a{'n' if kind[0] == 'i' else ''} {kind} ({method.doc})"
            )
    if json_body and not method.takes_json:
        found.append(f"{name}: sent as JSON, which this method does not read; send a form ({method.doc})")
    return found
