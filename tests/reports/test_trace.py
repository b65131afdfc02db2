"""`sluice trace`: each recipient's action, rule, verdict reasons and the post's link."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
from pathlib import Path

from sluice.core.db import make_engine
from sluice.reports.trace import trace
from tests.gateway.test_diversion import MESSAGE, TEAM, rules_file, wait_for_jobs
from tests.servers import GatewayThread, SmtpSink, gateway_settings


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sluice.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_trace_shows_where_each_recipient_got_the_message(tmp_path: Path,
                                                          clean_sink: SmtpSink) -> None:
    settings = gateway_settings(tmp_path, upstream=clean_sink.address,
                                rules_file=rules_file(tmp_path), classify=True)
    gw = GatewayThread(settings, None)
    try:
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("boss@example.com", TEAM, MESSAGE)
        assert wait_for_jobs(tmp_path / "data", {"done"})
    finally:
        gw.stop()
    engine = make_engine(settings)
    (found,) = trace(engine, message_id="fyi-1@example.com")  # without angle brackets
    lines = {line.recipient: line for line in found.lines}
    assert set(lines) == set(TEAM)
    assert lines["ann@example.com"].action == "divert"
    assert lines["ann@example.com"].destination == "team-space"
    assert lines["ann@example.com"].post_state == "done"
    assert "/space/team-news/" in lines["ann@example.com"].link
    assert lines["dia@example.com"].status == "delivered"
    assert found.category and found.reasons
    engine.dispose()

    shown = sluice("trace", "<fyi-1@example.com>", "--data-dir", str(tmp_path / "data"))
    assert shown.returncode == 0, shown.stderr
    assert "ann@example.com: divert → team-space by rule" in shown.stdout
    assert "dia@example.com: deliver (no rule: stays mail) — delivered" in shown.stdout
    assert "because " in shown.stdout

    by_recipient = sluice("trace", "--recipient", "bob@example.com", "--since", "1h",
                          "--json", "--data-dir", str(tmp_path / "data"))
    assert by_recipient.returncode == 0, by_recipient.stderr
    (entry,) = json.loads(by_recipient.stdout)
    assert [line["recipient"] for line in entry["lines"]] == ["bob@example.com"]

    missing = sluice("trace", "<nope@x>", "--data-dir", str(tmp_path / "data"))
    assert missing.returncode == 1
