"""Alert deliveries parsed into `store.alerts.Alert`: Alertmanager's webhook (version 4) and Tocsin's generic
webhook. Anything wrong raises `BadAlert` naming the problem; nothing here touches the database."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from handlers import text
from handlers.render import truncate_text
from store.alerts import Alert
from store.policy import PRIORITIES, Policy
from store.service import TEXT_MAX, TITLE_MAX
from store.timeline import SYSTEM_ACTOR

ALERTMANAGER = "alertmanager"
WEBHOOK = "webhook"  # the generic webhook's source when it names none
MAX_ALERTS = 1000
MAX_KEY = 4000
STATUSES = ("firing", "resolved")
WEBHOOK_FIELDS = (
    "dedup_key",
    "status",
    "title",
    "description",
    "priority",
    "severity",
    "category",
    "source",
    "started_at",
    "labels",
)
_SOURCE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_EPOCH = datetime(1971, 1, 1, tzinfo=UTC)  # earlier is a zero time ("0001-01-01T00:00:00Z"): none given


class BadAlert(Exception):
    """The delivery cannot be used; `status` is the HTTP status, `problem` says why in one sentence."""

    def __init__(self, problem: str, *, status: int = 422, error: str = "invalid_alert") -> None:
        super().__init__(problem)
        self.problem, self.status, self.error = problem, status, error


def decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        where = (
            f" (line {error.lineno}, column {error.colno})" if isinstance(error, json.JSONDecodeError) else ""
        )
        raise BadAlert(f"the body is not valid JSON{where}", status=400, error="malformed_json") from None


def from_alertmanager(data: Any, *, policy: Policy) -> Alert:
    """Alertmanager's webhook payload, version 4; the key is its groupKey."""
    body = _object(data, "the body")
    if "version" in body and body["version"] != "4":
        raise BadAlert(f"version: {_show(body['version'])} is not supported (Alertmanager sends version 4)")
    status = _status(body.get("status"), "status")
    key = _key(body.get("groupKey"), "groupKey")
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise BadAlert("alerts: must be a non-empty list of alerts")
    if len(raw_alerts) > MAX_ALERTS:
        raise BadAlert(
            f"alerts: {len(raw_alerts):,} alerts in one payload; at most {MAX_ALERTS:,} "
            "(set max_alerts in Alertmanager's webhook_config)",
            status=413,
            error="too_many_alerts",
        )
    common_labels = _strings(body.get("commonLabels"), "commonLabels")
    common_annotations = _strings(body.get("commonAnnotations"), "commonAnnotations")
    alerts = [_one_alert(item, f"alerts[{index}]") for index, item in enumerate(raw_alerts)]
    firing = [a for a in alerts if a["status"] == "firing"] or alerts
    first = firing[0]
    title = (
        common_annotations.get("summary")
        or common_labels.get("alertname")
        or first["annotations"].get("summary")
        or first["labels"].get("alertname")
        or ""
    ).strip()
    if status == "firing" and not title:
        raise BadAlert("no title: set annotations.summary or labels.alertname on the alerts")
    if (
        title
        and len(firing) > 1
        and not (common_annotations.get("summary") or common_labels.get("alertname"))
    ):
        title = f"{title} (and {len(firing) - 1} more)"
    description = common_annotations.get("description") or (
        first["annotations"].get("description", "") if len(firing) == 1 else ""
    )
    starts = [a["starts_at"] for a in firing if a["starts_at"]]
    ends = [a["ends_at"] for a in alerts if a["ends_at"]]
    return Alert(
        source=ALERTMANAGER,
        key=key,
        firing=status == "firing",
        title=_clip(title, TITLE_MAX),
        description=_clip(description.strip(), TEXT_MAX),
        label_sets=tuple(a["labels"] for a in firing),
        started_at=min(starts) if starts else None,
        ended_at=max(ends) if ends and status == "resolved" else None,
        details=tuple(_shown(_detail(a, common_labels if len(alerts) > 1 else {})) for a in alerts),
    )


def from_webhook(data: Any, *, policy: Policy) -> Alert:
    """Tocsin's generic webhook: one alert, keyed by its dedup_key within its source (README: Alerts)."""
    body = _object(data, "the body")
    unknown = sorted(str(k) for k in body if k not in WEBHOOK_FIELDS)
    if unknown:
        raise BadAlert(f"unknown field {', '.join(unknown)} (expected {', '.join(WEBHOOK_FIELDS)})")
    status = _status(body.get("status"), "status")
    key = _key(body.get("dedup_key"), "dedup_key")
    title = _text(body.get("title"), "title")
    if status == "firing" and not title:
        raise BadAlert("title: is missing or empty")
    source = body.get("source", WEBHOOK)
    if not isinstance(source, str) or not _SOURCE.fullmatch(source) or source == SYSTEM_ACTOR:
        raise BadAlert(
            f"source: {_show(source)} is not a source name (lowercase letters, digits, '.', '_' and '-', "
            f"at most 32, not {SYSTEM_ACTOR!r})"
        )
    priority = body.get("priority")
    if priority is not None and (not isinstance(priority, str) or priority.upper() not in PRIORITIES):
        raise BadAlert(f"priority: {_show(priority)} is not one of {', '.join(PRIORITIES)}")
    category = body.get("category")
    if category is not None and category not in policy.categories:
        raise BadAlert(f"category: {_show(category)} is not one of {', '.join(policy.categories)}")
    labels = dict(_strings(body.get("labels"), "labels"))
    severity = body.get("severity")
    if severity is not None:
        if not isinstance(severity, str) or not severity.strip():
            raise BadAlert(f"severity: {_show(severity)} is not a non-empty string")
        labels["severity"] = severity
    started_at = _time(body.get("started_at"), "started_at")
    detail = {"status": status, "name": title or key, "summary": "", "labels": labels}
    return Alert(
        source=source,
        key=key,
        firing=status == "firing",
        title=_clip(title, TITLE_MAX),
        description=_clip(_text(body.get("description"), "description"), TEXT_MAX),
        label_sets=(labels,),
        priority=priority.upper() if isinstance(priority, str) else None,
        category=category,
        started_at=started_at,
        details=(_shown(detail),),
    )


def _one_alert(item: Any, where: str) -> dict[str, Any]:
    alert = _object(item, where)
    return {
        "status": _status(alert.get("status"), f"{where}.status"),
        "labels": _strings(alert.get("labels"), f"{where}.labels"),
        "annotations": _strings(alert.get("annotations"), f"{where}.annotations"),
        "starts_at": _time(alert.get("startsAt"), f"{where}.startsAt"),
        "ends_at": _time(alert.get("endsAt"), f"{where}.endsAt"),
    }


def _detail(alert: Mapping[str, Any], common: Mapping[str, str]) -> dict[str, Any]:
    """What a message shows of one alert: the labels that tell it from the others in its group."""
    labels = {k: v for k, v in alert["labels"].items() if k != "alertname" and common.get(k) != v}
    annotations = alert["annotations"]
    return {
        "status": alert["status"],
        "name": alert["labels"].get("alertname", "alert"),
        "summary": annotations.get("summary") or annotations.get("description") or "",
        "labels": labels,
    }


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadAlert(f"{where}: must be a JSON object, not {_kind(value)}")
    return value


def _status(value: Any, where: str) -> str:
    if value not in STATUSES:
        raise BadAlert(f"{where}: {_show(value)} is not firing or resolved", error="unknown_status")
    return str(value)


def _key(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadAlert(f"{where}: is missing or empty")
    if len(value) > MAX_KEY:
        raise BadAlert(f"{where}: is {len(value):,} characters long; at most {MAX_KEY:,}")
    return value


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadAlert(f"{where}: must be a string, not {_kind(value)}")
    return value.strip()


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadAlert(f"{where}: must be an object of strings")
    return value


def _time(value: Any, where: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise BadAlert(f"{where}: {_show(value)} is not an ISO 8601 time like 2026-11-22T10:04:05Z")
    if parsed.tzinfo is None:
        raise BadAlert(f"{where}: {_show(value)} has no UTC offset (add Z or +01:00)")
    parsed = parsed.astimezone(UTC)
    return parsed if parsed >= _EPOCH else None


def _clip(raw: str, limit: int) -> str:
    """An alert's text as Tocsin keeps user text (handlers/text.py): encoded once, since monitoring sends
    it raw and nothing in it is meant live, then clipped to `limit` without cutting an entity."""
    return truncate_text(text.from_input(raw), limit)


def _shown(detail: dict[str, Any]) -> dict[str, Any]:
    """What a message shows of one alert, encoded like any alert text (the routes use the raw labels)."""
    labels = {text.from_input(k): text.from_input(v) for k, v in detail["labels"].items()}
    name, summary = text.from_input(detail["name"]), text.from_input(detail["summary"])
    return {**detail, "name": name, "summary": summary, "labels": labels}


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _show(value: Any) -> str:
    shown = json.dumps(value) if not isinstance(value, str) else f'"{value}"'
    return shown if len(shown) <= 60 else shown[:57] + "..."
