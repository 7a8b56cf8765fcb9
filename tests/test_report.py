"""`/incident stats`, `/incident detected`, the declare form's Detected field and `tocsin report`."""

from __future__ import annotations

import csv
import io
import json

from tests.conftest import ANNOUNCE, GENERAL, ROOT
from tests.helpers import declare
from tests.processes import environment, run
from tests.signed import select, text_input


async def test_stats_detected_and_report_formats(bot, database_url) -> None:
    incident = await declare(bot, "P2 Search results empty")
    channel = incident.channel.id
    await bot.slack.command("ack", channel=channel, user="U_BOB")
    future = await bot.slack.command("detected 2999-01-01 00:00", channel=channel, user="U_BOB")
    assert "after the incident was declared" in future.body
    garbled = await bot.slack.command("detected yesterday", channel=channel, user="U_BOB")
    assert "is not a time like" in garbled.body
    reply = await bot.slack.command("detected 2020-01-01 09:30", channel=channel, user="U_BOB")
    assert "INC-1 was detected at 2020-01-01 09:30 UTC" in reply.body

    stats = await bot.slack.command("stats 7d")
    assert stats.json["response_type"] == "ephemeral"
    assert "Incidents, last 7 days: 1 declared" in stats.json["text"] and "MTTD" in stats.json["text"]
    assert "Unknown window" in (await bot.slack.command("stats 2w")).body

    env = environment(DATABASE_URL=database_url, TOCSIN_CONFIG=str(ROOT / "app.yaml"))
    code, out, err = await run("report", "--days", "7", "--format", "json", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert set(report) >= {
        "window_days",
        "incidents",
        "mtta_seconds",
        "mttr_seconds",
        "mttd_seconds",
        "sla",
        "reopen_rate",
        "escalation_rate",
        "open",
        "repeats",
    }
    assert report["window_days"] == 7 and report["incidents"]["total"] == 1
    assert report["mttd_seconds"]["mean"] > 0 and report["mttr_seconds"]["mean"] is None
    by_priority = report["times_by_priority"]  # the P2 was acknowledged, not resolved
    assert by_priority["P2"]["mtta_seconds"] == report["mtta_seconds"]["mean"] is not None
    assert by_priority["P2"]["mttr_seconds"] is None and by_priority["P1"] == {
        "mtta_seconds": None,
        "mttr_seconds": None,
    }
    assert report["open"][0]["id"] == "INC-1" and report["open"][0]["state"] == "investigating"
    code, out, err = await run("report", "--format", "csv", env=env)
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["metric", "key", "value"] and ["incidents.total", "", "1"] in rows
    code, out, err = await run("report", env=env)
    assert code == 0 and "Incidents, last 30 days: 1 declared" in out
    code, out, err = await run("report", "--days", "0", env=env)
    assert code == 1 and "--days" in err


async def test_declare_form_takes_a_detection_time(bot) -> None:
    await bot.slack.command("declare", channel=GENERAL)
    await bot.fake.wait_for(lambda: bot.fake.views)
    values = {
        "title": {"title": text_input("Queue stuck")},
        "impact": {"impact": select("moderate")},
        "urgency": {"urgency": select("high")},
        "category": {"category": select("application")},
        "detected": {"detected": text_input("next tuesday")},
    }
    reply = await bot.slack.submit("incident_declare", values)
    assert reply.json["response_action"] == "errors" and "detected" in reply.json["errors"]
    values["detected"] = {"detected": text_input("2020-05-01 08:00")}
    reply = await bot.slack.submit("incident_declare", values)
    assert reply.body == ""
    await bot.fake.wait_for(
        lambda: [m for m in bot.fake.posts(event_type="incident_declared") if m.channel != ANNOUNCE]
    )
    shown = await bot.slack.command("INC-1 show")
    assert "*Detected* 2020-05-01 08:00 UTC" in shown.body
