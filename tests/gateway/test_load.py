"""Load from Postfix's smtp-source: every message arrives exactly once."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

from tests.gateway.conftest import StartGateway
from tests.servers import SmtpSink, require_binary

MESSAGES = 1000
SESSIONS = 20


def test_1000_messages_over_20_sessions_arrive_exactly_once(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path) -> None:
    gw = start_gateway(upstream=clean_sink.address)
    result = subprocess.run(
        [require_binary("smtp-source"), "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", "4096",
         "-f", "load@example.com", "-t", "sink@example.com", "-S", "load",
         f"127.0.0.1:{gw.port}"],
        capture_output=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr
    messages = clean_sink.wait_for(MESSAGES, timeout=60)
    ids = [re.search(rb"Message-Id: (<[^>]+>)", m.content, re.IGNORECASE) for m in messages]
    assert all(ids)
    assert len(messages) == MESSAGES
    assert len({m.group(1) for m in ids if m}) == MESSAGES
    db = sqlite3.connect(tmp_path / "data" / "sluice.db")
    assert db.execute("select count(*) from ledger").fetchone() == (MESSAGES,)
    assert db.execute("select count(*) from recipient_outcome where status='delivered'"
                      ).fetchone() == (MESSAGES,)
