"""The weekly digest: the last 7 days' figures, with a PNG chart when matplotlib is installed
(`pip install -e '.[charts]'`). It rides on the durable timers: one `weekly_digest` row per
scheduled moment (unique), claimed by exactly one replica."""

from __future__ import annotations

import io
import logging
from datetime import datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from store.policy import PRIORITIES, Policy

log = logging.getLogger("tocsin.digest")

KIND = "weekly_digest"
COLOURS = {"P1": "#c0392b", "P2": "#e67e22", "P3": "#f1c40f", "P4": "#95a5a6"}


def next_due(policy: Policy, *, after: datetime) -> datetime | None:
    if not policy.digest_cron:
        return None
    trigger = CronTrigger.from_crontab(policy.digest_cron, timezone=policy.timezone)
    return trigger.get_next_fire_time(None, after)


def chart(days: list[dict[str, Any]]) -> bytes | None:
    """Incidents per day stacked by priority, with the MTTR trend; None without matplotlib."""
    try:
        # Optional and heavy: imported only when a digest is drawn.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        log.info(
            "matplotlib is not installed; the digest goes without a chart", extra={"event": "digest_no_chart"}
        )
        return None
    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    labels = [d["day"][5:] for d in days]
    bottom = [0] * len(days)
    for priority in PRIORITIES:
        counts = [d[priority] for d in days]
        axes.bar(labels, counts, bottom=bottom, label=priority, color=COLOURS[priority])
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_ylabel("incidents declared")
    axes.set_title("Incidents per day, and mean time to resolve")
    trend = figure.add_subplot(sharex=axes, frameon=False)
    trend.yaxis.tick_right()
    trend.yaxis.set_label_position("right")
    hours = [d["mttr_seconds"] / 3600 if d["mttr_seconds"] is not None else float("nan") for d in days]
    trend.plot(labels, hours, color="#2c3e50", marker="o", label="MTTR (h)")
    trend.set_ylabel("MTTR, hours")
    axes.legend(loc="upper left", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
