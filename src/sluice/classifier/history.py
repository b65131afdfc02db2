"""What each sender has sent before: the issue's "sender's history where known".

A gateway sees every message an organisation's people exchange, so it knows things no single
message says: whether this sender mostly writes to many people, whether their mail is mostly
list or system mail, whether they write to these recipients often, whether these recipients
write back. Counts per sender and per (sender, recipient) pair are kept in memory, bounded,
and fed one message at a time in the order mail arrives. A message's facts are read before
it is counted, so a message never informs its own verdict; a copy of a message already seen
(same Message-ID, or same sender, Date and subject: a message delivered in two transactions,
or filed in two mailboxes) gets the facts of its first arrival and is not counted twice.

Training reads the same facts (`facts_in_date_order`) over all the mail it is given, labeled
or not, in Date order; nothing here reads a label.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from sluice.classifier.features import is_reply, looks_automated, readers
from sluice.core.mail import Mail

#: Senders remembered; the least recently seen is forgotten first.
MAX_SENDERS = 50_000
#: (sender, recipient) pairs remembered; the least recently seen is forgotten first.
MAX_PAIRS = 200_000
#: Messages remembered for recognising copies (with their facts): a gateway's catch-up
#: (`gateway/senders.py`) recognises its own recorded messages among these.
MAX_COPIES = 30_000
#: Thread subjects remembered per sender.
MAX_SUBJECTS = 32
#: Recipients of one message that the pair counts look at (a list of 500 adds nothing).
MAX_PAIR_RECIPIENTS = 50
#: Facts: the header features' names start with this (reasons.py words them).
PREFIX = "hist_"


class Sent(NamedTuple):
    """One message as the history counts it (a tuple: made for every message)."""

    key: str
    sender: str
    recipients: tuple[str, ...]
    readers: int
    reply: bool
    automated: bool
    #: `subject_key` of the thread subject.
    subject: str


def subject_key(thread_subject: str) -> str:
    """What the history keeps of a thread subject: a short digest, the same for the subject
    and for the digest a header-only gateway stores in its place ("sha256:HEX")."""
    if thread_subject.startswith(_STORED_DIGEST):
        return thread_subject[len(_STORED_DIGEST):][:16]
    return hashlib.sha256(thread_subject.encode("utf-8", "replace")).hexdigest()[:16]


_STORED_DIGEST = "sha256:"


def sent(mail: Mail) -> Sent:
    """The message's sender, recipients and shape, lowercased addresses. The recipients are
    the envelope's where there is one (what a gateway records), else To and Cc."""
    sender = mail.from_addr.lower()
    key = mail.message_id
    if not key:
        key = f"{sender}\n{mail.date.isoformat() if mail.date else ''}\n{mail.subject}"
    addresses = mail.envelope.rcpt_tos or (*mail.to, *mail.cc)
    return Sent(key, sender, tuple(dict.fromkeys(map(str.lower, addresses))), readers(mail),
                is_reply(mail), looks_automated(mail),
                subject_key(mail.thread.normalized_subject))


class _Sender:
    """Counts of one sender's messages."""

    __slots__ = ("automated", "many", "messages", "one", "replies", "subjects")

    def __init__(self) -> None:
        self.messages = 0
        self.many = 0
        self.one = 0
        self.replies = 0
        self.automated = 0
        self.subjects: OrderedDict[str, None] = OrderedDict()


class SenderHistory:
    """Bounded counts of who sent what to whom; one owner (not thread-safe).

    `observe(mail)` answers the facts known before `mail` and then counts it.
    """

    def __init__(self, *, max_senders: int = MAX_SENDERS, max_pairs: int = MAX_PAIRS,
                 max_copies: int = MAX_COPIES) -> None:
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._copies: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._max_senders = max_senders
        self._max_pairs = max_pairs
        self._max_copies = max_copies

    def __len__(self) -> int:
        return len(self._senders)

    def observe(self, mail: Mail) -> dict[str, float]:
        return self.observe_sent(sent(mail))

    def observe_sent(self, message: Sent) -> dict[str, float]:
        known = self._copies.get(message.key)
        if known is not None:
            self._copies.move_to_end(message.key)
            return known
        facts = self.facts(message)
        self.count(message)
        self._copies[message.key] = facts
        if len(self._copies) > self._max_copies:
            self._copies.popitem(last=False)
        return facts

    def facts(self, message: Sent) -> dict[str, float]:
        """Header features from what the sender sent before (all 0 for a stranger)."""
        recipients = message.recipients[:MAX_PAIR_RECIPIENTS]
        pairs = self._pairs
        back = sum(pairs.get((r, message.sender), 0) for r in recipients)
        facts = {"hist_known": 0.0, "hist_reciprocal": _scaled(back)}
        record = self._senders.get(message.sender)
        if record is None or not message.sender:
            return facts
        n = record.messages
        to = max((pairs.get((message.sender, r), 0) for r in recipients), default=0)
        facts.update({
            "hist_known": _scaled(n),
            "hist_many": record.many / n,
            "hist_one": record.one / n,
            "hist_reply": record.replies / n,
            "hist_auto": record.automated / n,
            "hist_same_subject": float(message.subject in record.subjects),
            "hist_pair": _scaled(to),
        })
        return facts

    def count(self, message: Sent) -> None:
        if not message.sender:
            return
        record = self._senders.get(message.sender)
        if record is None:
            record = self._senders[message.sender] = _Sender()
            if len(self._senders) > self._max_senders:
                self._senders.popitem(last=False)
        else:
            self._senders.move_to_end(message.sender)
        record.messages += 1
        record.many += message.readers >= 6
        record.one += message.readers <= 1
        record.replies += message.reply
        record.automated += message.automated
        record.subjects[message.subject] = None
        record.subjects.move_to_end(message.subject)
        if len(record.subjects) > MAX_SUBJECTS:
            record.subjects.popitem(last=False)
        pairs = self._pairs
        for recipient in message.recipients[:MAX_PAIR_RECIPIENTS]:
            key = (message.sender, recipient)
            pairs[key] = pairs.pop(key, 0) + 1
        while len(pairs) > self._max_pairs:
            pairs.popitem(last=False)


def _scaled(count: int) -> float:
    return math.log1p(count) / 3.0


def facts_in_date_order(mails: Sequence[Mail]) -> list[dict[str, float]]:
    """Each message's facts from the messages before it by Date (undated ones last, in the
    order given): what a gateway that had relayed them all would know."""
    def when(i: int) -> tuple[bool, float, int]:
        date = mails[i].date
        try:
            return (False, date.timestamp(), i) if date else (True, 0.0, i)
        except (OverflowError, OSError, ValueError):
            return (True, 0.0, i)

    history = SenderHistory(max_senders=len(mails) + 1, max_pairs=10 * MAX_PAIRS,
                            max_copies=len(mails) + 1)
    out: list[dict[str, float]] = [{} for _ in mails]
    for i in sorted(range(len(mails)), key=when):
        out[i] = history.observe(mails[i])
    return out
