"""`sluice report`: the live figures as HTML, CSV and JSON files, run as the real command."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sluice.core.errors import ConfigError
from sluice.reports.report_command import period_from
from tests.reports.scenario import Recorded, record_scenario


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    result = record_scenario(tmp_path_factory.mktemp("report"))
    yield result
    result.engine.dispose()


def run(recorded: Recorded, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluice.cli", "report", "--data-dir",
         str(recorded.settings.data_dir), *args],
        capture_output=True, text=True, timeout=120)


def since_days(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).date().isoformat()


def test_json_to_standard_output(recorded: Recorded) -> None:
    done = run(recorded, "--since", since_days(30), "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["totals"]["messages"] == 4
    assert data["totals"]["reduction_percent"] == 40.0
    assert data["baseline"] is None  # no analysis run stored
    short = json.loads(run(recorded, "--since", "2d", "--format", "json").stdout)
    assert short["totals"]["messages"] == 3  # M3 is nine days old


def test_csv_file_for_one_person(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "ann.csv"
    done = run(recorded, "--since", since_days(30), "--format", "csv", "--user",
               "Ann@Example.com", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and str(out) in done.stderr
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0][:3] == ["table", "key", "messages"]
    assert ["totals", "all", "4", "2", "2", "0", "1", "50.0", "25.0"] in rows
    assert {r[1] for r in rows if r[0] == "user"} == {"ann@example.com"}


def test_html_is_self_contained(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = run(recorded, "--since", since_days(20), "--until",
               datetime.now(UTC).date().isoformat(), "--bucket", "week", "--out", str(out))
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert html.count("<svg") == 4
    assert "<script" not in html
    assert re.search(r'(src|href)="(https?:)?//', html) is None  # nothing fetched
    assert "40.0%" in html and "boss@example.com" in html
    assert "Per week" in html


def test_bad_dates_are_configuration_errors(recorded: Recorded) -> None:
    done = run(recorded, "--since", "yesterday")
    assert done.returncode == 2 and "--since" in done.stderr
    with pytest.raises(ConfigError):
        period_from("2024-05-10", "2024-05-01")
    span = period_from("2024-05-01", "2024-05-31")
    assert span.since == datetime(2024, 5, 1, tzinfo=UTC)
    assert span.until == datetime(2024, 6, 1, tzinfo=UTC)
