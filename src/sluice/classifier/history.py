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

#: Senders remembered; the least recently counted is forgotten first.
MAX_SENDERS = 50_000
#: (sender, recipient) pairs remembered; the least recently counted is forgotten first.
MAX_PAIRS = 200_000
#: Messages remembered for recognising copies (with their facts): a gateway's catch-up
#: (`gateway/senders.py`) recognises its own recorded messages among these.
MAX_COPIES = 30_000
#: Thread subjects remembered per sender.
MAX_SUBJECTS = 32
#: Recipients of one message that the pair counts look at (a list of 500 adds nothing).
MAX_PAIR_RECIPIENTS = 50
#: The header facts that say a message came from a list or a system (`looks_automated`).
AUTOMATION_FACTS = ("list_id", "precedence_bulk", "precedence_list", "auto_submitted",
                    "system_sender", "null_sender")
_DIGEST = "sha256:"


class Sent(NamedTuple):
    """One message as the history counts it (a tuple: made for every message)."""

    key: str
    sender: str
    #: Lowercased, without repeats, at most `MAX_PAIR_RECIPIENTS`.
    recipients: tuple[str, ...]
    readers: int
    reply: bool
    automated: bool
    #: The thread subject, or its digest as a header-only gateway stores it ("sha256:HEX").
    subject: str


def subject_digest(thread_subject: str) -> str:
    """The thread subject as a header-only gateway records it (`handler._thread_key`)."""
    if not thread_subject or thread_subject.startswith(_DIGEST):
        return thread_subject
    return _DIGEST + hashlib.sha256(thread_subject.encode("utf-8", "replace")).hexdigest()


def _key(mail: Mail, sender: str) -> str:
    if mail.message_id:
        return mail.message_id
    return f"{sender}\n{mail.date.isoformat() if mail.date else ''}\n{mail.subject}"


def _recipients(mail: Mail) -> tuple[str, ...]:
    """The envelope's recipients where there are any (what a gateway records), else To and
    Cc; lowercased, without repeats."""
    addresses = mail.envelope.rcpt_tos or (*mail.to, *mail.cc)
    return tuple(dict.fromkeys(map(str.lower, addresses)))[:MAX_PAIR_RECIPIENTS]


def sent(mail: Mail, headers: dict[str, float] | None = None, *,
         digests: bool = False) -> Sent:
    """The message as the history counts it. `headers`: its header facts, if the model
    computed them already (`features.header_features`): the automation and reply flags are
    read from them instead of from the headers again. `digests`: subjects as their digests."""
    sender = mail.from_addr.lower()
    subject = mail.thread.normalized_subject
    if headers is None:
        automated, reply = looks_automated(mail), is_reply(mail)
    else:
        automated = any(headers[name] for name in AUTOMATION_FACTS)
        reply = bool(headers["re_subject"] or mail.thread.in_reply_to)
    return Sent(_key(mail, sender), sender, _recipients(mail), readers(mail), reply,
                automated, subject_digest(subject) if digests else subject)


class SenderHistory:
    """Bounded counts of who sent what to whom; one owner (not thread-safe).

    `observe(mail)` answers the facts known before `mail` and then counts it. The counts are
    kept in the order of last counting (a counted key moves to the end), so the first key is
    the one to forget (OrderedDict: forgetting the first key of a plain dict again and again
    scans the holes its deletions left). `digests`: keep thread subjects as digests, as a
    header-only gateway records them, so that counting its records agrees with live mail.
    """

    def __init__(self, *, max_senders: int = MAX_SENDERS, max_pairs: int = MAX_PAIRS,
                 max_copies: int = MAX_COPIES, digests: bool = False) -> None:
        #: sender -> [messages, to many, to one, replies, automated, {subject: None}]
        self._senders: OrderedDict[str, list] = OrderedDict()  # type: ignore[type-arg]
        self._pairs: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._copies: OrderedDict[str, dict[str, float]] = OrderedDict()
        self._max_senders = max_senders
        self._max_pairs = max_pairs
        self._max_copies = max_copies
        self.digests = digests

    def __len__(self) -> int:
        return len(self._senders)

    def observe(self, mail: Mail, headers: dict[str, float] | None = None) -> dict[str, float]:
        """The facts before `mail`, then `mail` counted; `headers`: its header facts, if
        computed already (cheaper)."""
        known = self._copies.get(mail.message_id) if mail.message_id else None
        if known is not None:
            return known
        return self.observe_sent(sent(mail, headers, digests=self.digests))

    def observe_sent(self, message: Sent) -> dict[str, float]:
        known = self._copies.get(message.key)
        if known is not None:
            return known
        facts = self.facts(message)
        self.count(message)
        copies = self._copies
        copies[message.key] = facts
        if len(copies) > self._max_copies:
            copies.popitem(last=False)
        return facts

    def facts(self, message: Sent) -> dict[str, float]:
        """Header features from what the sender sent before (all 0 for a stranger)."""
        sender = message.sender
        pairs = self._pairs
        back = 0
        for recipient in message.recipients:
            back += pairs.get((recipient, sender), 0)
        facts = {"hist_known": 0.0, "hist_reciprocal": math.log1p(back) / 3.0}
        record = self._senders.get(sender) if sender else None
        if record is None:
            return facts
        most = 0
        for recipient in message.recipients:
            count = pairs.get((sender, recipient), 0)
            if count > most:
                most = count
        n = record[0]
        facts["hist_known"] = math.log1p(n) / 3.0
        facts["hist_many"] = record[1] / n
        facts["hist_one"] = record[2] / n
        facts["hist_reply"] = record[3] / n
        facts["hist_auto"] = record[4] / n
        facts["hist_same_subject"] = float(message.subject in record[5])
        facts["hist_pair"] = math.log1p(most) / 3.0
        return facts

    def count(self, message: Sent) -> None:
        sender = message.sender
        if not sender:
            return
        senders = self._senders
        record = senders.get(sender)
        if record is None:
            record = senders[sender] = [0, 0, 0, 0, 0, {}]
            if len(senders) > self._max_senders:
                senders.popitem(last=False)
        else:
            senders.move_to_end(sender)
        record[0] += 1
        record[1] += message.readers >= 6
        record[2] += message.readers <= 1
        record[3] += message.reply
        record[4] += message.automated
        subjects = record[5]  # a small dict: at most MAX_SUBJECTS + 1 keys
        subjects.pop(message.subject, None)
        subjects[message.subject] = None
        if len(subjects) > MAX_SUBJECTS:
            del subjects[next(iter(subjects))]
        pairs = self._pairs
        for recipient in message.recipients:
            key = (sender, recipient)
            count = pairs.get(key)
            if count is None:
                pairs[key] = 1
            else:
                pairs[key] = count + 1
                pairs.move_to_end(key)
        while len(pairs) > self._max_pairs:
            pairs.popitem(last=False)


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
