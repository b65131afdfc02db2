"""`sluice analyze` end to end: formats, the database baseline, IMAP through the command line,
and invariants on a sample of the real corpus with the shipped classifier."""

from __future__ import annotations

import csv
import io
import json
import mailbox
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from sluice.cli import main
from sluice.core.db import make_engine
from sluice.core.settings import load_settings
from sluice.core.tables_analysis import AnalysisCategory, AnalysisRun, AnalysisWeek
from sluice.mailboxes.imap import PASSWORD_ENV
from sluice.reports.analysis_export import CSV_COLUMNS
from tests.dovecot import PASSWORD, Dovecot, dovecot  # noqa: F401
from tests.mailboxes.fixture_mail import MAX_BYTES, RULES, fixture_maildir, good_messages
from tests.servers import CORPUS

CORPUS_SAMPLE = 300


@pytest.fixture()
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["analyze", *args, "--state", str(tmp_path / "state.sqlite"),
                 "--data-dir", str(tmp_path / "data"), "--jobs", "1",
                 "--storm-min-replies", "2", "--storm-min-recipients", "4",
                 "--max-size", str(MAX_BYTES)])
    assert code == 0
    return capsys.readouterr().out


def test_json_report_and_the_stored_baseline(tmp_path: Path, rules_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    mbx = fixture_maildir(tmp_path / "md")
    report = json.loads(run(tmp_path, capsys, str(mbx), "--rules", str(rules_file),
                            "--no-classify", "--format", "json"))
    for key in ("messages", "skipped", "deliveries", "diverted_deliveries", "reduction_percent",
                "by_category", "by_week", "top_senders", "repeated_attachments",
                "reply_all_storms"):
        assert key in report
    assert (report["messages"], report["deliveries"], report["diverted_deliveries"],
            report["reduction_percent"], report["skipped"]["count"]) == (7, 20, 5, 25.0, 4)
    engine = make_engine(load_settings(None, data_dir=tmp_path / "data"))
    with Session(engine) as session:
        runs = session.exec(select(AnalysisRun)).all()
        weeks = session.exec(select(AnalysisWeek)).all()
        categories = session.exec(select(AnalysisCategory)).all()
    engine.dispose()
    assert [(r.messages, r.deliveries, r.diverted_deliveries, r.reduction_percent, r.skipped)
            for r in runs] == [(7, 20, 5, 25.0, 4)]
    assert json.loads(runs[0].report_json)["by_week"] == report["by_week"]
    assert sorted((w.week, w.category, w.deliveries, w.diverted_deliveries) for w in weeks) == [
        ("2024-W01", "unclassified", 3, 3), ("2024-W02", "unclassified", 17, 2)]
    assert str(weeks[0].week_start) in ("2024-01-01", "2024-01-08")
    assert [(c.category, c.messages) for c in categories] == [("unclassified", 7)]


def test_no_store_leaves_the_database_alone(tmp_path: Path, rules_file: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    mbx = fixture_maildir(tmp_path / "md")
    run(tmp_path, capsys, str(mbx), "--rules", str(rules_file), "--no-classify",
        "--format", "json", "--no-store")
    assert not (tmp_path / "data").exists()


def test_csv_is_one_flat_table(tmp_path: Path, rules_file: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    mbx = fixture_maildir(tmp_path / "md")
    out = tmp_path / "report.csv"
    run(tmp_path, capsys, str(mbx), "--rules", str(rules_file), "--no-classify",
        "--format", "csv", "--out", str(out), "--no-store")
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert all(len(row) == len(CSV_COLUMNS) for row in rows)
    total = next(row for row in rows if row[0] == "total")
    assert total[3:7] == ["7", "20", "5", "25.0"]
    weeks = {(row[1], row[2]): row[4] for row in rows if row[0] == "week"}
    assert weeks == {("2024-W01", "unclassified"): "3", ("2024-W02", "unclassified"): "17"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]


def test_html_is_self_contained_with_svg_charts(tmp_path: Path, rules_file: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    mbx = fixture_maildir(tmp_path / "md")
    page = run(tmp_path, capsys, str(mbx), "--rules", str(rules_file), "--no-classify",
               "--format", "html", "--no-store")
    parser = _Tags()
    parser.feed(page)
    parser.close()
    assert parser.tags.count("svg") == 3
    assert "script" not in parser.tags
    assert not [link for link in parser.links if not link.startswith("#")]  # nothing fetched
    assert "25.0% fewer inbox deliveries" in page


def test_imap_source_on_the_command_line(tmp_path: Path, rules_file: Path,
                                         dovecot: Dovecot,  # noqa: F811
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    dovecot.clear()
    dovecot.add_messages(good_messages())
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    report = json.loads(run(tmp_path, capsys, dovecot.url("INBOX"), "--rules",
                            str(rules_file), "--no-classify", "--format", "json",
                            "--no-store"))
    assert (report["messages"], report["deliveries"]) == (7, 20)
    assert report["sources"] == [dovecot.url().rstrip("/")]


def _invariants(report: dict[str, Any]) -> None:
    categories = report["by_category"].values()
    assert sum(c["messages"] for c in categories) == report["messages"]
    assert sum(c["deliveries"] for c in categories) == report["deliveries"]
    assert sum(c["diverted_deliveries"] for c in categories) == report["diverted_deliveries"]
    assert sum(w["messages"] for w in report["by_week"].values()) == report["messages"]
    assert report["deliveries"] >= report["messages"] > 0
    assert 0 <= report["reduction_percent"] <= 100
    assert 0 <= report["diverted_deliveries"] <= report["deliveries"]


@pytest.mark.skipif(not (CORPUS / "enron_inboxes").is_dir(), reason="corpus not found")
def test_invariants_on_a_corpus_sample_read_as_folder_and_as_mbox(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = sorted(p for p in (CORPUS / "enron_inboxes").rglob("*") if p.is_file())
    sample = sample[::max(1, len(sample) // CORPUS_SAMPLE)][:CORPUS_SAMPLE]
    folder = tmp_path / "sample"
    folder.mkdir()
    box = mailbox.mbox(tmp_path / "sample.mbox")
    for index, path in enumerate(sample):
        raw = path.read_bytes()
        (folder / f"{index}.eml").write_bytes(raw)
        box.add(raw)
    box.close()
    as_folder = json.loads(run(tmp_path, capsys, str(folder), "--format", "json",
                               "--no-store"))
    _invariants(as_folder)
    assert as_folder["messages"] + as_folder["skipped"]["count"] == len(sample)
    assert set(as_folder["by_category"]) <= {
        "automated", "event", "feedback", "material", "broadcast", "discussion", "direct"}
    saved = sum(f["diverted_deliveries"] * as_folder["reading_time_saved"][
        "seconds_per_delivery"][c] for c, f in as_folder["by_category"].items())
    assert as_folder["reading_time_saved"]["seconds"] == pytest.approx(saved)
    as_mbox = json.loads(run(tmp_path, capsys, str(tmp_path / "sample.mbox"),
                             "--format", "json", "--no-store"))
    for key in ("messages", "deliveries", "diverted_deliveries", "by_category", "by_week"):
        assert as_mbox[key] == as_folder[key]
