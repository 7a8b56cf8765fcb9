"""The incident report as plain text, CSV and a Slack message."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from handlers.render import Message, Renderer, duration


def _time(seconds: float | None) -> str:
    return "-" if seconds is None else duration(timedelta(seconds=seconds))


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def lines(report: dict[str, Any]) -> list[str]:
    incidents = report["incidents"]
    out = [
        f"Incidents, last {report['window_days']} days: {incidents['total']} declared ({incidents['cancelled']} cancelled)",
        "  by priority: " + ", ".join(f"{p} {n}" for p, n in incidents["by_priority"].items()),
        "  by category: "
        + (", ".join(f"{c} {n}" for c, n in sorted(incidents["by_category"].items())) or "-"),
        "  by state: " + (", ".join(f"{s} {n}" for s, n in sorted(incidents["by_state"].items())) or "-"),
    ]
    for key, label in (("mtta_seconds", "MTTA"), ("mttr_seconds", "MTTR"), ("mttd_seconds", "MTTD")):
        figure = report[key]
        out.append(
            f"{label}: mean {_time(figure['mean'])}, median {_time(figure['median'])}, p90 {_time(figure['p90'])}"
        )
    out.append(
        "SLA met (response / resolution): "
        + ", ".join(
            f"{p} {_share(v['response_met'])} / {_share(v['resolution_met'])}"
            for p, v in report["sla"].items()
        )
    )
    out.append(
        "MTTA / MTTR by priority: "
        + ", ".join(
            f"{p} {_time(v['mtta_seconds'])} / {_time(v['mttr_seconds'])}"
            for p, v in report["times_by_priority"].items()
        )
    )
    out.append(
        f"Reopen rate: {_share(report['reopen_rate'])}; escalation rate (paged beyond level 1): {_share(report['escalation_rate'])}"
    )
    out.append(f"Open now: {len(report['open'])}")
    for item in report["open"][:20]:
        out.append(
            f"  {item['id']} {item['priority']} {item['state']} age {_time(item['age_seconds'])} SLA {item['sla']}"
        )
    if report["repeats"]:
        out.append(
            "Repeats (candidates for problem management): "
            + ", ".join(f"{r['category']} ({r['count']})" for r in report["repeats"])
        )
    return out


def as_text(report: dict[str, Any]) -> str:
    return "\n".join(lines(report)) + "\n"


def as_csv(report: dict[str, Any]) -> str:
    """One `metric,key,value` row per figure."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "key", "value"])
    writer.writerow(["window_days", "", report["window_days"]])
    for key in ("total", "cancelled"):
        writer.writerow([f"incidents.{key}", "", report["incidents"][key]])
    for group in ("by_priority", "by_category", "by_state"):
        for name, count in report["incidents"][group].items():
            writer.writerow([f"incidents.{group}", name, count])
    for figure in ("mtta_seconds", "mttr_seconds", "mttd_seconds"):
        for stat, value in report[figure].items():
            writer.writerow([figure, stat, "" if value is None else value])
    for priority, shares in report["sla"].items():
        for clock, value in shares.items():
            writer.writerow([f"sla.{priority}", clock, "" if value is None else value])
    for priority, means in report["times_by_priority"].items():
        for figure, value in means.items():
            writer.writerow([f"times_by_priority.{priority}", figure, "" if value is None else value])
    for key in ("reopen_rate", "escalation_rate"):
        writer.writerow([key, "", "" if report[key] is None else report[key]])
    for item in report["open"]:
        writer.writerow(
            ["open", item["id"], f"{item['priority']} {item['state']} {item['age_seconds']} {item['sla']}"]
        )
    for repeat in report["repeats"]:
        writer.writerow(["repeats", repeat["category"], repeat["count"]])
    return buffer.getvalue()


def as_message(report: dict[str, Any], *, renderer: Renderer, title: str) -> Message:
    return renderer.message("incident_stats.json.j2", title=title, lines=lines(report))
