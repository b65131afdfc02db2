"""One `sluice analyze` run: read mailboxes, classify, decide, count, report.

It sits on top of the packages (like `simulate_command`): it needs the readers
(`mailboxes`), the classifier, the pure `router.decide` and the counting in `reports`.
Messages stream through one at a time; every `flush_every` messages the batch's counters and
keys are committed to the state file together, so an interrupted run continues where its
last commit ended (Ctrl-C commits the messages counted so far first).

With `jobs` > 1, parsing, classification and the decision run in worker processes (spawned,
each loading the model once) on chunks of `CHUNK` messages, at most `2 x jobs` chunks in
flight: memory stays bounded and results are counted in reading order.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sluice.core.mail import Envelope, Mail
from sluice.core.verdict import Verdict
from sluice.mailboxes.items import Fetched, Item, Unreadable
from sluice.mailboxes.sources import MailSource
from sluice.reports.analysis import AnalysisSettings, Batch, MessageFacts, SkipRecord, message_facts
from sluice.reports.analysis_policy import EveryRecipientInternal, default_policy, with_domains
from sluice.reports.analysis_report import ReportContext, build_report
from sluice.reports.analysis_state import AnalysisState, RunInfo
from sluice.reports.simulate import NO_RECIPIENTS, mail_from_file
from sluice.router.decide import decide
from sluice.router.rules import RuleSet

#: Messages counted between two commits of the state (the work lost to a hard kill).
FLUSH_EVERY = 500
#: Messages handed to a worker process at once.
CHUNK = 64
EMPTY = "empty message"
UNPARSABLE = "message cannot be parsed"
CLASSIFIER_FAILED = "classifier failed"
DECISION_FAILED = "rules could not be applied"
DUPLICATE = "duplicate: same Message-ID already counted"

Classify = Callable[[Mail], Verdict | None]
RulesFor = Callable[[Mail], RuleSet]
Progress = Callable[[int], None]
Result = MessageFacts | SkipRecord


@dataclass(frozen=True, slots=True)
class Setup:
    """How every message is examined; plain data, so worker processes can rebuild it."""

    rules_name: str = "default policy: divert broadcast, material, feedback, event and automated"
    rules_text: str = ""  # "" = the default policy
    internal_domains: tuple[str, ...] = ()
    owner: str = ""
    classify: bool = True
    model: Path | None = None


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything that decides what a run counts; equal specs resume each other."""

    sources: tuple[str, ...]
    folders: tuple[str, ...]
    max_message_bytes: int
    setup: Setup = field(default_factory=Setup)
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)

    def identity(self) -> str:
        s = self.setup
        data = [self.sources, self.folders, s.rules_name,
                hashlib.sha256(s.rules_text.encode()).hexdigest(), s.internal_domains, s.owner,
                s.classify, str(s.model or "default model"), self.max_message_bytes,
                self.settings.identity()]
        return hashlib.sha256(json.dumps(data, default=str).encode()).hexdigest()


class Examiner:
    """Item -> MessageFacts or the reason it is skipped: parse, classify, decide."""

    def __init__(self, setup: Setup) -> None:
        from sluice.router.rulesfile import parse_rules

        self.owner = setup.owner.lower()
        if setup.rules_text:
            rules = with_domains(parse_rules(setup.rules_text, setup.rules_name),
                                 setup.internal_domains)
        else:
            rules = default_policy(setup.internal_domains)
        self.rules_for: RulesFor = (
            (lambda _mail: rules) if setup.internal_domains or setup.rules_text
            else EveryRecipientInternal(rules))
        self.classify: Classify | None = None
        self.model_version = "none"
        if setup.classify:
            from sluice.classifier.model import Classifier

            model = Classifier.load(setup.model) if setup.model else Classifier.load_default()
            self.classify, self.model_version = model.classify, model.version

    def __call__(self, item: Item) -> Result:
        """Never raises for a bad message: whatever fails is a skip with its reason."""
        if isinstance(item, Unreadable):
            return SkipRecord(item.key, item.name, item.reason, item.detail)
        assert isinstance(item, Fetched)
        if not item.raw.strip():
            return SkipRecord(item.key, item.name, EMPTY, "")
        try:
            mail = _with_owner(mail_from_file(item.raw), self.owner)
        except Exception as exc:  # parse is lenient; anything still raising is reported
            return SkipRecord(item.key, item.name, UNPARSABLE, type(exc).__name__)
        if not mail.envelope.rcpt_tos:
            return SkipRecord(item.key, item.name, NO_RECIPIENTS, "")
        try:
            verdict = self.classify(mail) if self.classify is not None else None
        except Exception as exc:
            return SkipRecord(item.key, item.name, CLASSIFIER_FAILED, type(exc).__name__)
        try:
            return message_facts(item.key, mail, verdict, decide(mail, verdict,
                                                                 self.rules_for(mail)))
        except Exception as exc:
            return SkipRecord(item.key, item.name, DECISION_FAILED, type(exc).__name__)


def _with_owner(mail: Mail, owner: str) -> Mail:
    """The mailbox owner received every message in it, even when only Bcc'd or via a list."""
    if not owner or owner in mail.envelope.rcpt_tos:
        return mail
    return replace(mail, envelope=Envelope(mail.envelope.mail_from,
                                           (*mail.envelope.rcpt_tos, owner)))


# --- worker processes ------------------------------------------------------------------------

_worker: Examiner | None = None


def _init_worker(setup: Setup) -> None:
    global _worker
    _worker = Examiner(setup)


def _examine_chunk(items: list[Item]) -> list[Result]:
    assert _worker is not None
    return [_worker(item) for item in items]


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _examined(items: Iterator[Item], setup: Setup, examiner: Examiner | None,
              jobs: int) -> Iterator[Result]:
    if jobs <= 1:
        assert examiner is not None
        yield from (examiner(item) for item in items)
        return
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                             initializer=_init_worker, initargs=(setup,)) as pool:
        inflight: deque[Future[list[Result]]] = deque()
        for chunk in _chunks(items, CHUNK):
            inflight.append(pool.submit(_examine_chunk, chunk))
            if len(inflight) >= 2 * jobs:
                yield from inflight.popleft().result()
        while inflight:
            yield from inflight.popleft().result()


# --- the run ---------------------------------------------------------------------------------


def _keyed(sources: Sequence[MailSource], done: Callable[[Sequence[str]], Any]
           ) -> Iterator[Item]:
    for source in sources:
        yield from source.read(done)


def run_analysis(spec: RunSpec, sources: Sequence[MailSource], state: AnalysisState, *,
                 examiner: Examiner | None = None, jobs: int = 1,
                 progress: Progress | None = None,
                 flush_every: int = FLUSH_EVERY) -> tuple[RunInfo, dict[str, Any]]:
    """Count every message of the sources not yet counted by this run; return the report.

    The run stays unfinished in the state until `finish_run` (after the report is out).
    """
    if jobs <= 1 and examiner is None:
        examiner = Examiner(spec.setup)
    info = state.begin(spec.identity(), "\n".join(spec.sources))
    batch = Batch(spec.settings)
    counted = info.done
    keys_in_batch: set[str] = set()
    try:
        for result in _examined(_keyed(sources, state.done_filter(info.id)), spec.setup,
                                examiner, jobs):
            if result.key in keys_in_batch:
                continue  # read twice in one batch (a file moved while listed)
            keys_in_batch.add(result.key)
            if isinstance(result, SkipRecord):
                batch.skip_record(result)
            elif result.message_id and (result.message_id in batch.message_ids
                                        or state.counted_message_id(info.id,
                                                                    result.message_id)):
                batch.skip(result.key, result.key, DUPLICATE, result.message_id)
            else:
                batch.add(result)
            counted += 1
            if batch.size >= flush_every:
                state.flush(info.id, batch)
                batch, keys_in_batch = Batch(spec.settings), set()
            if progress is not None:
                progress(counted)
    except KeyboardInterrupt:
        state.flush(info.id, batch)  # keep what was counted; the next run continues
        raise
    state.flush(info.id, batch)
    s = spec.setup
    context = ReportContext(
        sources=spec.sources, folders=spec.folders, rules=s.rules_name,
        internal_domains=s.internal_domains, owner=s.owner,
        max_message_bytes=spec.max_message_bytes, started=info.started.isoformat(),
        finished=datetime.now(UTC).isoformat())
    return info, build_report(state, info.id, spec.settings, context)


def finish_run(state: AnalysisState, info: RunInfo) -> None:
    """The report is out: the run is done and its working rows are dropped."""
    state.finish(info.id)
    state.forget(info.id)
