"""`sluice demo --once` runs the embedded default end to end from the command line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from sluice.demo.scenario import TEAM, team_mail
from tests.servers import free_port


def test_scenario_has_every_kind_of_team_mail() -> None:
    kinds = Counter(m.kind for m in team_mail())
    assert set(kinds) == {"material", "broadcast", "feedback", "event", "discussion",
                          "automated", "direct"}
    assert all(m.rcpt_tos for m in team_mail())


def test_demo_once_delivers_the_scenario_to_local_maildirs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sluice.cli", "demo", "--once", "--data-dir", str(tmp_path),
         "--listen", "127.0.0.1:0", "--web-listen", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    scenario = team_mail()
    assert f"sent {len(scenario)} messages" in result.stderr
    expected = Counter(r for m in scenario for r in m.rcpt_tos)
    db = sqlite3.connect(tmp_path / "sluice.db")
    assert db.execute("select count(*) from message").fetchone() == (len(scenario),)
    outcomes = db.execute("select recipient, status from recipient_outcome").fetchall()
    # Every recipient of every message is accounted for: in the inbox or posted.
    assert Counter(r for r, _ in outcomes) == expected
    assert {status for _, status in outcomes} <= {"delivered", "diverted"}
    delivered = Counter(p.parent.parent.name for p in (tmp_path / "mailboxes").glob("*/new/*"))
    assert delivered == Counter(r for r, status in outcomes if status == "delivered")
    assert set(delivered) >= {f"{login}@example.com" for login in TEAM}
    # The demo runs with its rules: what was diverted was posted, once per destination.
    assert (tmp_path / "demo-rules.yaml").exists()
    diverted = [r for r, status in outcomes if status == "diverted"]
    if diverted:
        jobs = db.execute("select state from outbox_job").fetchall()
        assert jobs and {state for (state,) in jobs} == {"done"}
