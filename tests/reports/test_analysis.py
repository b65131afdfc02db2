"""The analysis figures on a mailbox built by the test, against hand-computed expectations
(tests/mailboxes/fixture_mail.py shows the arithmetic), and resuming after interruptions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice import analyzer
from sluice.analyzer import (
    CLASSIFIER_FAILED,
    DUPLICATE,
    EMPTY,
    Examiner,
    RunSpec,
    Setup,
    finish_run,
    run_analysis,
)
from sluice.core.mail import Mail
from sluice.core.verdict import Verdict
from sluice.mailboxes.files import FileSource
from sluice.mailboxes.items import TOO_LARGE, DoneFilter, Item, nothing_done
from sluice.reports.analysis import (
    AnalysisSettings,
    MessageFacts,
    SkipRecord,
    reading_seconds_saved,
)
from sluice.reports.analysis_state import AnalysisState
from sluice.reports.simulate import NO_RECIPIENTS
from tests.mailboxes.fixture_mail import (
    MAX_BYTES,
    REPORT_PDF,
    RULES,
    SETTINGS,
    fixture_maildir,
    pdf_size,
    write_maildir,
)
from tests.servers import CORPUS

SETUP = Setup(rules_name="fixture rules", rules_text=RULES, classify=False)


def analyze(root: Path, state_path: Path, *, sources: list[Any] | None = None,
            jobs: int = 1, flush_every: int = 500) -> dict[str, Any]:
    source = FileSource(root, "mbx", max_bytes=MAX_BYTES)
    spec = RunSpec(sources=("mbx",), folders=(), max_message_bytes=MAX_BYTES, setup=SETUP,
                   settings=SETTINGS)
    state = AnalysisState(state_path)
    try:
        info, report = run_analysis(spec, sources or [source], state,
                                    examiner=Examiner(SETUP) if jobs == 1 else None,
                                    jobs=jobs, flush_every=flush_every)
        finish_run(state, info)
    finally:
        state.close()
    return report


@pytest.fixture()
def mailbox(tmp_path: Path) -> Path:
    return fixture_maildir(tmp_path / "maildir")


def test_totals_and_reduction(mailbox: Path, tmp_path: Path) -> None:
    report = analyze(mailbox, tmp_path / "state.sqlite")
    assert report["messages"] == 7
    assert report["deliveries"] == 20
    assert report["diverted_deliveries"] == 5
    assert report["inbox_deliveries_after"] == 15
    assert report["reduction_percent"] == 25.0
    assert report["by_category"] == {"unclassified": {
        "messages": 7, "deliveries": 20, "diverted_deliveries": 5,
        "audit_diverted_deliveries": 0}}
    assert report["by_destination"] == {"news": {"messages": 2, "deliveries": 5}}
    assert {(r["rule"], r["deliveries"]) for r in report["by_rule"]} == {
        ("news-out", 5), ("(no rule)", 15)}


def test_skipped_with_reasons(mailbox: Path, tmp_path: Path) -> None:
    skipped = analyze(mailbox, tmp_path / "state.sqlite")["skipped"]
    assert skipped["reasons"] == {EMPTY: 1, NO_RECIPIENTS: 1, TOO_LARGE: 1, DUPLICATE: 1}
    assert skipped["count"] == 4
    assert len(skipped["examples"]) == 4


def test_weeks_and_senders(mailbox: Path, tmp_path: Path) -> None:
    report = analyze(mailbox, tmp_path / "state.sqlite")
    weeks = report["by_week"]
    assert set(weeks) == {"2024-W01", "2024-W02"}
    assert weeks["2024-W01"]["week_start"] == "2024-01-01"
    assert (weeks["2024-W01"]["messages"], weeks["2024-W01"]["deliveries"],
            weeks["2024-W01"]["diverted_deliveries"]) == (1, 3, 3)
    assert (weeks["2024-W02"]["messages"], weeks["2024-W02"]["deliveries"],
            weeks["2024-W02"]["diverted_deliveries"]) == (6, 17, 2)
    senders = {s["sender"]: (s["messages"], s["deliveries"], s["diverted_deliveries"])
               for s in report["top_senders"]}
    assert senders["news@example.com"] == (2, 5, 5)
    assert senders["boss@example.com"] == (2, 3, 0)
    assert report["top_senders"][0]["sender"] in ("news@example.com", "boss@example.com")
    assert report["senders"] == 5


def test_attachments_storms_threads_resends(mailbox: Path, tmp_path: Path) -> None:
    report = analyze(mailbox, tmp_path / "state.sqlite")
    attachments = report["repeated_attachments"]
    assert attachments["files"] == 1
    top = attachments["top"][0]
    assert top["sha256"] == hashlib.sha256(REPORT_PDF).hexdigest()
    assert (top["filename"], top["messages"], top["deliveries"]) == ("report.pdf", 2, 5)
    assert attachments["bytes_sent_repeatedly"] == pdf_size() * 4
    storms = report["reply_all_storms"]
    assert (storms["threads"], storms["deliveries"]) == (1, 12)
    assert storms["top"][0]["subject"] == "Party"
    assert (storms["top"][0]["replies"], storms["top"][0]["max_recipients"]) == (2, 4)
    longest = report["longest_threads"][0]
    assert (longest["subject"], longest["messages"], longest["hours"]) == ("Party", 3, 2.0)
    resends = report["forgot_to_cc_resends"]
    assert resends["count"] == 1
    assert resends["examples"] == [{"sender": "boss@example.com", "subject": "Budget",
                                    "minutes_later": 30.0, "added_recipients": 1}]


def test_storm_thresholds_are_settings(mailbox: Path, tmp_path: Path) -> None:
    strict = AnalysisSettings(storm_min_replies=3, storm_min_recipients=4)
    spec = RunSpec(sources=("mbx",), folders=(), max_message_bytes=MAX_BYTES, setup=SETUP,
                   settings=strict)
    state = AnalysisState(tmp_path / "s.sqlite")
    _, report = run_analysis(spec, [FileSource(mailbox, "mbx", max_bytes=MAX_BYTES)], state,
                             examiner=Examiner(SETUP))
    state.close()
    assert report["reply_all_storms"]["threads"] == 0


def test_reading_time_is_diverted_deliveries_times_assumption() -> None:
    by_category = {"broadcast": {"diverted_deliveries": 10}, "event": {"diverted_deliveries": 4},
                   "direct": {"diverted_deliveries": 0}}
    assert reading_seconds_saved(by_category, {"broadcast": 45.0, "event": 20.0}) == 530.0


class Interrupted(Exception):
    """Stands for a dropped connection or a crash in the middle of a run."""


class StopsAfter:
    """A source that breaks off after `limit` messages, as an interrupted run does."""

    def __init__(self, source: FileSource, limit: int, error: BaseException) -> None:
        self.source, self.limit, self.error = source, limit, error

    @property
    def label(self) -> str:
        return self.source.label

    def read(self, done: DoneFilter = nothing_done) -> Iterator[Item]:
        for index, item in enumerate(self.source.read(done)):
            if index == self.limit:
                raise self.error
            yield item


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("started", "finished")}


@pytest.mark.parametrize("error", [KeyboardInterrupt(), Interrupted()],
                         ids=["ctrl-c", "crash"])
def test_interrupted_run_resumes_and_counts_each_message_once(
        mailbox: Path, tmp_path: Path, error: BaseException) -> None:
    expected = analyze(mailbox, tmp_path / "fresh.sqlite")
    state_path = tmp_path / "state.sqlite"
    broken = StopsAfter(FileSource(mailbox, "mbx", max_bytes=MAX_BYTES), 5, error)
    with pytest.raises(type(error)):
        analyze(mailbox, state_path, sources=[broken], flush_every=2)
    state = AnalysisState(state_path)
    unfinished = state.query("SELECT id FROM run WHERE finished IS NULL")
    done = state.query("SELECT count(*) FROM done")[0][0]
    state.close()
    assert len(unfinished) == 1
    # Ctrl-C commits what was counted (5); a crash loses the batch since the last commit (4).
    assert done == (5 if isinstance(error, KeyboardInterrupt) else 4)
    resumed = analyze(mailbox, state_path)
    assert _comparable(resumed) == _comparable(expected)


def test_worker_processes_give_the_same_report(mailbox: Path, tmp_path: Path) -> None:
    one = analyze(mailbox, tmp_path / "one.sqlite")
    two = analyze(mailbox, tmp_path / "two.sqlite", jobs=2)
    assert _comparable(one) == _comparable(two)


def _corpus_sample(root: Path, size: int) -> Path:
    """A maildir of corpus messages, every tenth one again later (same Message-ID: counted
    once, even when the copy falls into another chunk or batch), and an empty file."""
    files = sorted(p for p in (CORPUS / "enron_inboxes").rglob("*") if p.is_file())
    raws = [p.read_bytes() for p in files[::max(1, len(files) // size)][:size]]
    return write_maildir(root, [*raws, b"", *raws[::10]])


@pytest.mark.skipif(not (CORPUS / "enron_inboxes").is_dir(), reason="corpus not found")
@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_workers_count_a_classified_corpus_sample_like_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool) -> None:
    """The speed-ups (chunks classified together, Message-IDs looked up per chunk, workers)
    change no figure: the shipped classifier and default policy, batches cut mid-chunk."""
    root = _corpus_sample(tmp_path / "maildir", 240)
    setup = Setup()

    def report(jobs: int, state_path: Path) -> dict[str, Any]:
        source = FileSource(root, "sample")
        spec = RunSpec(sources=("sample",), folders=(), max_message_bytes=25 << 20,
                       setup=setup)
        state = AnalysisState(state_path)
        try:
            info, result = run_analysis(
                spec, [source], state, jobs=jobs, flush_every=37,
                examiner=Examiner(setup) if jobs == 1 else None)
            finish_run(state, info)
        finally:
            state.close()
        return _comparable(result)

    one = report(1, tmp_path / "one.sqlite")
    monkeypatch.setattr(analyzer, "_can_fork", lambda: fork)
    two = report(2, tmp_path / "two.sqlite")
    assert two == one
    assert one["messages"] + one["skipped"]["count"] == 240 + 1 + 24
    assert 0 < one["skipped"]["reasons"][DUPLICATE] <= 24  # copies of skipped ones stay
    assert one["skipped"]["reasons"][EMPTY] == 1
    assert set(one["by_category"]) - {"unclassified"} and "unclassified" not in one[
        "by_category"]


def test_a_classifier_failure_skips_that_message_only(mailbox: Path, tmp_path: Path) -> None:
    """Chunks are classified together; when that fails, each mail is tried alone so only
    the one the classifier cannot take is skipped."""
    examiner = Examiner(SETUP)

    def classify_many(mails: list[Mail]) -> list[Verdict]:
        if any(m.subject == "Budget" for m in mails):
            raise ValueError("cannot classify")
        return [Verdict("direct", 0.9, (), "test") for _ in mails]

    examiner.classify_many = classify_many
    results = examiner.examine(list(FileSource(mailbox, "mbx", max_bytes=MAX_BYTES).read()))
    failed = [r for r in results if isinstance(r, SkipRecord) and r.reason == CLASSIFIER_FAILED]
    counted = [r for r in results if isinstance(r, MessageFacts)]
    # The Budget message, its re-send and its copy in Archive; the other good ones counted.
    assert [(r.key.startswith("mbx|"), r.detail) for r in failed] == [(True, "ValueError")] * 3
    assert len(counted) == 5
    assert {r.category for r in counted} == {"direct"}


def test_finished_run_leaves_no_working_rows(mailbox: Path, tmp_path: Path) -> None:
    analyze(mailbox, tmp_path / "state.sqlite")
    state = AnalysisState(tmp_path / "state.sqlite")
    counts = [state.query(f"SELECT count(*) FROM {t}")[0][0]
              for t in ("run", "done", "counts", "thread", "sent")]
    state.close()
    assert counts == [0, 0, 0, 0, 0]
