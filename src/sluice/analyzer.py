"""One `sluice analyze` run: read mailboxes, classify, decide, count, report.

It sits on top of the packages (like `simulate_command`): it needs the readers
(`mailboxes`), the classifier, the pure `router.decide` and the counting in `reports`.
Messages stream through in chunks of `CHUNK`; every `flush_every` messages the batch's
counters and keys are committed to the state file together, so an interrupted run continues
where its last commit ended (Ctrl-C commits the messages counted so far first).

With `jobs` > 1, parsing, classification and the decision run in worker processes on chunks,
at most `2 x jobs` chunks in flight: memory stays bounded and results are counted in reading
order. Workers are forked with the model already loaded when this process has no other
thread, otherwise spawned (each loading it once). Only the messages' bytes go to a worker
and only the small `MessageFacts` come back. `default_jobs` picks one worker per CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from multiprocessing import get_all_start_methods, get_context
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

ClassifyMany = Callable[[list[Mail]], list[Verdict]]
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
    """Items -> MessageFacts or the reason each is skipped: parse, classify, decide."""

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
        self.classify_many: ClassifyMany | None = None
        self.model_version = "none"
        if setup.classify:
            from sluice.classifier.model import Classifier

            model = Classifier.load(setup.model) if setup.model else Classifier.load_default()
            # No sender history (classifier/history.py): every message is classified as
            # from a sender not seen before, so results do not depend on the reading order,
            # the number of worker processes or where an interrupted run resumed.
            self.classify_many = partial(model.classify_many, explain=False)
            self.model_version = model.version

    def __call__(self, item: Item) -> Result:
        return self.examine([item])[0]

    def examine(self, items: Sequence[Item]) -> list[Result]:
        """Never raises for a bad message: whatever fails is a skip with its reason. The
        chunk's messages are classified together (reasons left out: nothing here reads them)."""
        results: list[Result | Mail] = [self._parsed(item) for item in items]
        mails = [r for r in results if isinstance(r, Mail)]
        verdicts = self._verdicts(mails)
        out: list[Result] = []
        mail_index = 0
        for item, result in zip(items, results, strict=True):
            if not isinstance(result, Mail):
                out.append(result)
                continue
            verdict = verdicts[mail_index]
            mail_index += 1
            if isinstance(verdict, SkipRecord):
                out.append(replace(verdict, key=item.key, name=item.name))
                continue
            try:
                out.append(message_facts(item.key, result, verdict,
                                         decide(result, verdict, self.rules_for(result))))
            except Exception as exc:
                out.append(SkipRecord(item.key, item.name, DECISION_FAILED,
                                      type(exc).__name__))
        return out

    def _parsed(self, item: Item) -> Result | Mail:
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
        return mail

    def _verdicts(self, mails: list[Mail]) -> list[Verdict | SkipRecord | None]:
        """One verdict per mail; a mail the classifier fails on gets a skip (key filled in
        by the caller), found by classifying the chunk's mails one by one."""
        if self.classify_many is None:
            return [None] * len(mails)
        verdicts: list[Verdict | SkipRecord | None] = []
        try:
            verdicts.extend(self.classify_many(mails))
            return verdicts
        except Exception:
            verdicts.clear()
        for mail in mails:
            try:
                verdicts.append(self.classify_many([mail])[0])
            except Exception as exc:
                verdicts.append(SkipRecord("", "", CLASSIFIER_FAILED, type(exc).__name__))
        return verdicts


def _with_owner(mail: Mail, owner: str) -> Mail:
    """The mailbox owner received every message in it, even when only Bcc'd or via a list."""
    if not owner or owner in mail.envelope.rcpt_tos:
        return mail
    return replace(mail, envelope=Envelope(mail.envelope.mail_from,
                                           (*mail.envelope.rcpt_tos, owner)))


def default_jobs() -> int:
    """One worker per CPU; on a single CPU everything stays in this process."""
    cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 1


# --- worker processes ------------------------------------------------------------------------

_worker: Examiner | None = None


def _init_worker(setup: Setup) -> None:
    global _worker
    _worker = Examiner(setup)


def _adopt_worker(examiner: Examiner) -> None:
    """A forked worker uses the examiner (model loaded) it inherited: no start-up cost."""
    global _worker
    _worker = examiner


def _can_fork() -> bool:
    """Forking is cheap and safe here only in a process with no other thread (a thread
    holding a lock at fork time would leave the worker's copy locked forever)."""
    return "fork" in get_all_start_methods() and threading.active_count() == 1


def _pool(jobs: int, setup: Setup, examiner: Examiner | None) -> ProcessPoolExecutor:
    if examiner is not None and _can_fork():
        return ProcessPoolExecutor(jobs, mp_context=get_context("fork"),
                                   initializer=_adopt_worker, initargs=(examiner,))
    return ProcessPoolExecutor(jobs, mp_context=get_context("spawn"),
                               initializer=_init_worker, initargs=(setup,))


def _examine_chunk(items: list[Item]) -> list[Result]:
    assert _worker is not None
    return _worker.examine(items)


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    """Items in lists of `size`; if reading fails, the items read so far come first (so an
    interrupted run still counts and commits them), then the error."""
    chunk: list[Item] = []
    reading = iter(items)
    while True:
        try:
            item = next(reading)
        except StopIteration:
            break
        except BaseException:
            if chunk:
                yield chunk
            raise
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _examined(items: Iterator[Item], setup: Setup, examiner: Examiner | None,
              jobs: int) -> Iterator[list[Result]]:
    """Results chunk by chunk, in reading order."""
    if jobs <= 1:
        assert examiner is not None
        yield from (examiner.examine(chunk) for chunk in _chunks(items, CHUNK))
        return
    with _pool(jobs, setup, examiner) as pool:
        inflight: deque[Future[list[Result]]] = deque()
        for chunk in _chunks(items, CHUNK):
            inflight.append(pool.submit(_examine_chunk, chunk))
            if len(inflight) >= 2 * jobs:
                yield inflight.popleft().result()
        while inflight:
            yield inflight.popleft().result()


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
    if examiner is None and (jobs <= 1 or _can_fork()):
        examiner = Examiner(spec.setup)  # with jobs > 1, forked workers inherit it
    info = state.begin(spec.identity(), "\n".join(spec.sources))
    batch = Batch(spec.settings)
    counted = info.done
    keys_in_batch: set[str] = set()
    try:
        for results in _examined(_keyed(sources, state.done_filter(info.id)), spec.setup,
                                 examiner, jobs):
            # Message-IDs of this chunk counted by earlier batches: one look-up per chunk.
            counted_ids = state.counted_message_ids(info.id, [
                r.message_id for r in results
                if isinstance(r, MessageFacts) and r.message_id])
            for result in results:
                if result.key in keys_in_batch:
                    continue  # read twice in one batch (a file moved while listed)
                keys_in_batch.add(result.key)
                if isinstance(result, SkipRecord):
                    batch.skip_record(result)
                elif result.message_id and (result.message_id in batch.message_ids
                                            or result.message_id in counted_ids):
                    batch.skip(result.key, result.key, DUPLICATE, result.message_id)
                else:
                    batch.add(result)
                counted += 1
                if batch.size >= flush_every:
                    state.flush(info.id, batch)
                    counted_ids.update(batch.message_ids)
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
