"""The mailbox analysis: what each message contributes, gathered in bounded batches.

A message is reduced to `MessageFacts` (pure: Mail + Verdict + the routing decision of the
same `router.decide` the gateway runs), then added to a `Batch`: counters keyed by category,
week, sender, rule, destination, thread and attachment. A batch holds at most the messages
since the last flush; `analysis_state` adds it to the run's SQLite state in one transaction,
so memory does not grow with the mailbox and an interrupted run resumes where its last batch
ended.

Definitions (the report states them too):
- *deliveries*: internal recipients summed over messages (an inbox copy each); *diverted*:
  those an enforced divert or digest rule takes out of the inbox; *audit_diverted*: those an
  audit-mode rule would take out once enforced.
- *thread*: messages with the same normalised subject (Re:/Fwd:/[tags] removed, case folded):
  the corpora strip In-Reply-To, so subjects are what is left to group by. A *reply* has a
  Re:-style prefix or an In-Reply-To header.
- *reply-all storm*: a thread with at least `storm_min_replies` replies that each went to at
  least `storm_min_recipients` recipients.
- *repeated attachment*: a file (by sha256) that reached more than one inbox; the bytes sent
  repeatedly are its size times (inbox copies - 1).
- *"forgot to cc" re-send*: a later message from the same sender with the same fingerprint
  (normalised subject + the first `FINGERPRINT_CHARS` of its own text, quoted lines left out)
  sent within `resend_window_seconds` of the earlier one to all of the earlier one's
  recipients and at least one more (a newsletter sent to each reader separately is not one).
- *duplicates*: a Message-ID already counted in this run (the same message in two folders
  or two people's mailboxes) is skipped, so every message counts once.
- *reading time saved*: diverted inbox deliveries times the seconds a person is assumed to
  spend on such a message in the inbox, per category (`reading_seconds`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType

from sluice.core.decision import AUDIT, DIGEST, DIVERT, ENFORCE, RoutingDecision
from sluice.core.mail import Mail
from sluice.core.verdict import CATEGORIES, Verdict
from sluice.reports.simulate import NO_RULE, distinct_actions, is_inbox_delivery

#: Seconds a person spends on one inbox copy of a message of each category (opening,
#: skimming, filing or deleting). An assumption, stated in every report; change it with
#: `--reading-seconds CATEGORY=SECONDS`.
DEFAULT_READING_SECONDS: Mapping[str, float] = MappingProxyType({
    "automated": 10.0, "event": 20.0, "feedback": 30.0, "material": 30.0,
    "broadcast": 45.0, "discussion": 60.0, "direct": 60.0,
})
#: Characters of a message's own text that go into its re-send fingerprint.
FINGERPRINT_CHARS = 4000
#: Category recorded when a message was analyzed without a verdict.
UNCLASSIFIED = "unclassified"
NO_SENDER = "(no sender)"
UNKNOWN_WEEK = "unknown"


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """Thresholds and assumptions; every one is printed with the report."""

    storm_min_replies: int = 5
    storm_min_recipients: int = 10
    resend_window_seconds: int = 2 * 3600
    top: int = 20
    reading_seconds: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_READING_SECONDS))

    def identity(self) -> str:
        """What changes the stored aggregates (a run can only resume with the same)."""
        return f"storm_min_recipients={self.storm_min_recipients}"


@dataclass(frozen=True, slots=True)
class AttachmentFact:
    sha256: str
    filename: str
    size: int


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What one message contributes to the analysis; nothing else of it is kept."""

    key: str
    message_id: str
    sender: str
    subject: str
    category: str
    week: str
    timestamp: float | None
    recipients: tuple[str, ...]
    deliveries: int
    diverted: int
    audit_diverted: int
    rules: tuple[tuple[str, str, int], ...]  # (rule, mode, deliveries)
    destinations: tuple[tuple[str, int], ...]  # (destination, deliveries) enforced posts
    thread: str
    is_reply: bool
    attachments: tuple[AttachmentFact, ...]
    fingerprint: str
    defects: int


def iso_week(moment: datetime | None) -> str:
    if moment is None:
        return UNKNOWN_WEEK
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def week_start(week: str) -> date | None:
    """The Monday a week label (`2001-W23`) starts on; None for the unknown week."""
    year, sep, number = week.partition("-W")
    if not sep or not year.isdigit() or not number.isdigit():
        return None
    return date.fromisocalendar(int(year), int(number), 1)


def _timestamp(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def text_fingerprint(subject_key: str, text: str) -> str:
    """sha256 of the subject key and the own text: lines quoted with `>` left out, runs of
    whitespace (line ends included) as one space, lowercased."""
    words: list[str] = []
    for line in text[:FINGERPRINT_CHARS * 2].splitlines():
        parts = line.split()
        if parts and parts[0][0] == ">":
            continue
        words += parts
    normal = " ".join(words).lower()[:FINGERPRINT_CHARS]
    return hashlib.sha256(f"{subject_key}\0{normal}".encode()).hexdigest()[:32]


def message_facts(key: str, mail: Mail, verdict: Verdict | None,
                  decision: RoutingDecision) -> MessageFacts:
    """Reduce a decided message to the facts the analysis keeps."""
    deliveries = diverted = audit_diverted = 0
    rules: Counter[tuple[str, str]] = Counter()
    destinations: Counter[str] = Counter()
    recipients: list[str] = []
    for action in distinct_actions(decision):
        recipients.append(action.recipient.lower())
        if not is_inbox_delivery(action):
            continue
        deliveries += 1
        rules[(action.rule or NO_RULE, action.mode)] += 1
        leaves = action.action in (DIVERT, DIGEST)
        if leaves and action.mode == ENFORCE:
            diverted += 1
        elif leaves and action.mode == AUDIT:
            audit_diverted += 1
        if action.destination and action.posts:
            destinations[action.destination] += 1
    thread_key = mail.thread.normalized_subject.strip().lower()
    seen: dict[str, AttachmentFact] = {}
    for attachment in mail.attachments:
        seen.setdefault(attachment.sha256, AttachmentFact(
            attachment.sha256, attachment.filename, attachment.size))
    return MessageFacts(
        key=key,
        message_id=mail.message_id,
        sender=(mail.from_addr or mail.envelope.mail_from).lower() or NO_SENDER,
        subject=mail.subject,
        category=verdict.category if verdict is not None else UNCLASSIFIED,
        week=iso_week(mail.date),
        timestamp=_timestamp(mail.date),
        recipients=tuple(recipients),
        deliveries=deliveries,
        diverted=diverted,
        audit_diverted=audit_diverted,
        rules=tuple((rule, mode, n) for (rule, mode), n in sorted(rules.items())),
        destinations=tuple(sorted(destinations.items())),
        thread=thread_key,
        is_reply=mail.thread.reply_depth > 0 or bool(mail.thread.in_reply_to),
        attachments=tuple(seen.values()),
        fingerprint=text_fingerprint(thread_key, mail.text),
        defects=len(mail.defects),
    )


# --- one batch of counters ------------------------------------------------------------------

#: Counter kinds in the state: (kind, key1, key2) -> messages, deliveries, diverted, audit.
TOTAL, CATEGORY, WEEK, SENDER, RULE, DESTINATION, SKIP, DEFECTS = (
    "total", "category", "week", "sender", "rule", "destination", "skip", "defects")


@dataclass(slots=True)
class ThreadCounts:
    subject: str
    messages: int = 0
    replies: int = 0
    wide_replies: int = 0
    max_recipients: int = 0
    deliveries: int = 0
    first: float | None = None
    last: float | None = None


@dataclass(slots=True)
class AttachmentCounts:
    filename: str
    size: int
    messages: int = 0
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class SkipRecord:
    key: str
    name: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class SentRecord:
    sender: str
    fingerprint: str
    timestamp: float
    subject: str
    recipients: str  # sorted, newline-separated


class Batch:
    """Counters for the messages since the last flush (bounded by the flush size)."""

    def __init__(self, settings: AnalysisSettings) -> None:
        self.settings = settings
        self.size = 0
        self.counts: dict[tuple[str, str, str], list[int]] = {}
        self.threads: dict[str, ThreadCounts] = {}
        self.attachments: dict[str, AttachmentCounts] = {}
        self.sent: list[SentRecord] = []
        self.skips: list[SkipRecord] = []
        self.done: list[str] = []
        self.message_ids: set[str] = set()

    def _count(self, kind: str, k1: str, k2: str, messages: int, deliveries: int = 0,
               diverted: int = 0, audit: int = 0) -> None:
        row = self.counts.get((kind, k1, k2))
        if row is None:
            row = self.counts[(kind, k1, k2)] = [0, 0, 0, 0]
        row[0] += messages
        row[1] += deliveries
        row[2] += diverted
        row[3] += audit

    def skip_record(self, record: SkipRecord) -> None:
        self.skip(record.key, record.name, record.reason, record.detail)

    def skip(self, key: str, name: str, reason: str, detail: str = "") -> None:
        self.size += 1
        self.done.append(key)
        self.skips.append(SkipRecord(key, name, reason, detail))
        self._count(SKIP, reason, "", 1)

    def add(self, facts: MessageFacts) -> None:
        self.size += 1
        self.done.append(facts.key)
        if facts.message_id:
            self.message_ids.add(facts.message_id)
        figures = (1, facts.deliveries, facts.diverted, facts.audit_diverted)
        self._count(TOTAL, "", "", *figures)
        self._count(CATEGORY, facts.category, "", *figures)
        self._count(WEEK, facts.week, facts.category, *figures)
        self._count(SENDER, facts.sender, "", *figures)
        if facts.defects:
            self._count(DEFECTS, "", "", 1)
        for rule, mode, n in facts.rules:
            self._count(RULE, rule, mode, 1, n)
        for destination, n in facts.destinations:
            self._count(DESTINATION, destination, "", 1, n)
        self._thread(facts)
        for attachment in facts.attachments:
            counts = self.attachments.get(attachment.sha256)
            if counts is None:
                counts = self.attachments[attachment.sha256] = AttachmentCounts(
                    attachment.filename, attachment.size)
            counts.filename = min(counts.filename, attachment.filename)
            counts.messages += 1
            counts.deliveries += facts.deliveries
        if facts.timestamp is not None:
            self.sent.append(SentRecord(facts.sender, facts.fingerprint, facts.timestamp,
                                        facts.subject, "\n".join(sorted(facts.recipients))))

    def _thread(self, facts: MessageFacts) -> None:
        if not facts.thread:
            return
        counts = self.threads.get(facts.thread)
        if counts is None:
            counts = self.threads[facts.thread] = ThreadCounts(facts.subject)
        counts.subject = min(counts.subject, facts.subject)
        counts.messages += 1
        counts.deliveries += facts.deliveries
        counts.max_recipients = max(counts.max_recipients, len(facts.recipients))
        if facts.is_reply:
            counts.replies += 1
            if len(facts.recipients) >= self.settings.storm_min_recipients:
                counts.wide_replies += 1
        if facts.timestamp is not None:
            counts.first = facts.timestamp if counts.first is None else min(
                counts.first, facts.timestamp)
            counts.last = facts.timestamp if counts.last is None else max(
                counts.last, facts.timestamp)


def reading_seconds_saved(by_category: Mapping[str, Mapping[str, int]],
                          seconds: Mapping[str, float]) -> float:
    """Diverted inbox deliveries times the assumed seconds per message of their category."""
    return float(sum(row["diverted_deliveries"] * seconds.get(category, 0.0)
                     for category, row in by_category.items()))


def known_categories() -> tuple[str, ...]:
    return (*CATEGORIES, UNCLASSIFIED)
