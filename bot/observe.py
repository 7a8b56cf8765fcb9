"""What `GET /metrics` serves: Tocsin's own figures in Prometheus's text format, so an operator can alert
on the bot itself (docs/operations.md lists every metric).

Counters and histograms are fed as things happen (`slack_call`, `timer_lag`, `acked`). The outbox and
timer figures are read from the database by the scrape itself (`render(health=...)`, given what
store.health reports, the same figures as /healthz), so every replica serves the same backlog."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

CONTENT_TYPE = CONTENT_TYPE_LATEST
ALL = "all"  # the urgency label of the whole backlog, when the health report does not split it

# Slack wants every request answered within 3 seconds: the buckets are fine below it and 3 is one of them.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
# The sweep looks for due timers every `scheduler.tick` (30 s as shipped): most lag is below one tick.
LAG_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

# The `path` label of a request to /slack/events, by the type of Bolt's parsed body.
SLACK_PATHS = {
    "block_actions": "action",
    "interactive_message": "action",
    "view_submission": "view",
    "view_closed": "view",
    "block_suggestion": "options",
    "dialog_suggestion": "options",
    "shortcut": "shortcut",
    "message_action": "shortcut",
    "event_callback": "events",
    "url_verification": "events",
    "app_rate_limited": "events",
}


def slack_path(body: Mapping[str, Any]) -> str:
    """The `path` label of a Slack request: command, action, view, options, shortcut, events or other."""
    if "command" in body:
        return "command"
    return SLACK_PATHS.get(str(body.get("type")), "other")


class Metrics:
    """One bot's metrics, in a registry of its own (never prometheus_client's global one: several bots
    may run in one process, as in the tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._slack_calls = Counter(
            "tocsin_slack_calls",
            "Slack Web API calls, by method and result (ok, ratelimited, or Slack's error code).",
            ["method", "result"],
            registry=self.registry,
        )
        self._timer_lag = Histogram(
            "tocsin_timer_lag_seconds",
            "Seconds from a timer's due time to the sweep that claimed it.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._ack = Histogram(
            "tocsin_ack_seconds",
            "Seconds from receiving a request to its HTTP answer, by path.",
            ["path"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self._health = _HealthCollector()
        self.registry.register(self._health)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def slack_call(self, method: str, result: str) -> None:
        """One answer from Slack's Web API to `method`: "ok", "ratelimited" (HTTP 429) or the error code."""
        self._slack_calls.labels(method=method, result=result).inc()

    def timer_lag(self, seconds: float) -> None:
        """A timer was claimed `seconds` after it fell due."""
        self._timer_lag.observe(seconds)

    def acked(self, path: str, seconds: float) -> None:
        """A request of `path` (slack_path's labels, or "alert") was answered after `seconds`."""
        self._ack.labels(path=path).observe(seconds)

    def render(self, *, health: Mapping[str, Any] | None) -> bytes:
        """The exposition, with `health` (store.health.report; None: the database did not answer) as the
        outbox and timer gauges. Synchronous: nothing else runs on the loop between the report and it."""
        self._health.report = health
        try:
            return generate_latest(self.registry)
        finally:
            self._health.report = None


class _HealthCollector:
    """The gauges of one health report, made at scrape time: an urgency whose backlog emptied is not
    served at its last count."""

    def __init__(self) -> None:
        self.report: Mapping[str, Any] | None = None

    def describe(self) -> Iterable[Metric]:
        return list(_families())

    def collect(self) -> Iterable[Metric]:
        up, backlog, oldest, failed, held, timers_oldest = _families()
        report = self.report
        up.add_metric([], 0 if report is None else 1)
        yield up
        if report is None:
            return
        outbox = report.get("outbox", {})
        by_urgency = outbox.get("by_urgency")
        if by_urgency is None:  # a report without the split: the whole backlog, as one
            by_urgency = {
                ALL: {"count": outbox.get("backlog", 0), "oldest_seconds": outbox.get("oldest_seconds")}
            }
        for urgency, figures in by_urgency.items():
            backlog.add_metric([urgency], figures.get("count") or 0)
            oldest.add_metric([urgency], figures.get("oldest_seconds") or 0.0)
        failed.add_metric([], outbox.get("failed") or 0)
        held.add_metric([], outbox.get("held") or 0)
        timers = report.get("timers", {})
        timers_oldest.add_metric([], timers.get("oldest_due_seconds") or 0.0)
        yield from (backlog, oldest, failed, held, timers_oldest)


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily("tocsin_database_up", "1 if the database answered this scrape's health read."),
        GaugeMetricFamily(
            "tocsin_outbox_backlog", "Slack messages waiting in the outbox, by urgency.", labels=["urgency"]
        ),
        GaugeMetricFamily(
            "tocsin_outbox_oldest_seconds",
            "Seconds the oldest waiting message of each urgency has waited.",
            labels=["urgency"],
        ),
        GaugeMetricFamily("tocsin_outbox_failed", "Messages given up on, waiting for `tocsin outbox retry`."),
        GaugeMetricFamily(
            "tocsin_outbox_held", "Waiting messages held for an operator (a token Slack refuses, a scope)."
        ),
        GaugeMetricFamily(
            "tocsin_timers_oldest_due_seconds", "Seconds the most overdue unfired timer is past its due time."
        ),
    )
