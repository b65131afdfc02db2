"""The sender history a gateway classifies with: warmed from its records, kept current.

A gateway counts every message it classifies into its `SenderHistory` as it goes. When it
starts it first counts the newest recorded messages (`WARM_MESSAGES`), so a restart does
not forget who writes to whom; every `CATCH_UP_SECONDS` it counts the messages recorded
since, which brings in what other gateway nodes sharing the database relayed (its own are
recognised by Message-ID and not counted twice).

Recorded messages carry their envelope recipients (the outcomes), readers and automated
flags (revision 0003) and the thread subject (a digest in header-only mode, which the
history then keeps for live mail too), so they count as the live message did; except that a
header-only gateway keeps no subject, so its records tell a reply by In-Reply-To alone. A
message recorded without a Message-ID is counted again by the catch-up (Postfix's cleanup
gives every message one before a content filter sees it).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Engine, text

from sluice.classifier.features import RE_SUBJECT
from sluice.classifier.history import MAX_PAIR_RECIPIENTS, SenderHistory, Sent

log = logging.getLogger(__name__)

#: Newest recorded messages counted when a gateway starts.
WARM_MESSAGES = 50_000
#: How often the history counts the messages recorded since (other nodes' mail). Own
#: messages are recognised among them while the history still remembers them
#: (`history.MAX_COPIES`): 10 s at a few hundred messages a second is well inside.
CATCH_UP_SECONDS = 10.0
#: Most messages one catch-up reads (a node far behind catches up over several rounds).
CATCH_UP_BATCH = 20_000

_MESSAGES = text(
    "SELECT id, message_id, header_from, subject, thread_subject, in_reply_to, "
    "readers, to_count, cc_count, automated FROM message WHERE id > :after "
    "ORDER BY id LIMIT :limit")
_NEWEST = text("SELECT id FROM message ORDER BY id DESC LIMIT 1 OFFSET :skip")
_RECIPIENTS = text(
    "SELECT message_pk, recipient FROM recipient_outcome "
    "WHERE message_pk > :after AND message_pk <= :last ORDER BY id")


def recorded_sent(row: Any, recipients: tuple[str, ...]) -> Sent:
    """A recorded message as the history counts it (`history.sent` for a live one)."""
    sender = (row.header_from or "").lower()
    subject = row.subject or ""
    return Sent(
        key=row.message_id or f"record:{row.id}",
        sender=sender,
        recipients=recipients[:MAX_PAIR_RECIPIENTS],
        readers=row.readers or (row.to_count or 0) + (row.cc_count or 0),
        reply=bool(row.in_reply_to) or bool(RE_SUBJECT.match(subject)),
        automated=bool(row.automated),
        subject=row.thread_subject or "",
    )


def recorded_since(conn: Connection, after: int,
                   limit: int = CATCH_UP_BATCH) -> tuple[list[Sent], int]:
    """The messages recorded after id `after` (at most `limit`, oldest first), and the id
    of the last one (`after` when there are none)."""
    rows = conn.execute(_MESSAGES, {"after": after, "limit": limit}).all()
    if not rows:
        return [], after
    last = int(rows[-1].id)
    recipients: dict[int, list[str]] = defaultdict(list)
    for pk, recipient in conn.execute(_RECIPIENTS, {"after": after, "last": last}):
        recipients[pk].append(recipient.lower())
    return [recorded_sent(row, tuple(dict.fromkeys(recipients.get(row.id, ()))))
            for row in rows], last


class RecordedHistory:
    """A `SenderHistory` and how far into the records it has counted. Reading the records
    (`read`, any thread) and counting them (`count`, the history's owner) are apart, so a
    gateway reads in a worker thread and counts in its event loop."""

    def __init__(self, history: SenderHistory | None = None) -> None:
        self.history = history if history is not None else SenderHistory()
        self.counted_to = 0

    def warm(self, conn: Connection, newest: int = WARM_MESSAGES) -> int:
        """Count the `newest` recorded messages; how many were counted."""
        start = conn.execute(_NEWEST, {"skip": max(newest - 1, 0)}).scalar()
        self.counted_to = 0 if start is None else int(start) - 1
        total = 0
        while True:
            sents, last = self.read(conn)
            self.count(sents, last)
            total += len(sents)
            if len(sents) < CATCH_UP_BATCH:
                return total

    def read(self, conn: Connection) -> tuple[list[Sent], int]:
        return recorded_since(conn, self.counted_to)

    def count(self, sents: list[Sent], last: int) -> None:
        """Count what `read` returned (messages counted live are recognised, not recounted)."""
        for message in sents:
            self.history.observe_sent(message)
        self.counted_to = max(self.counted_to, last)


def warmed_history(engine: Engine, *, digests: bool = False) -> RecordedHistory:
    """The history of the newest records; an empty one (logged) if they cannot be read:
    a gateway classifies without history rather than not start. `digests`: the gateway
    records thread subjects as digests (header-only mode), so the history keeps them so."""
    recorded = RecordedHistory(SenderHistory(digests=digests))
    try:
        with engine.connect() as conn:
            counted = recorded.warm(conn)
    except Exception:
        log.exception("reading the sender history from the records failed; starting without")
        return RecordedHistory(SenderHistory(digests=digests))
    log.info("sender history: %d recorded messages, %d senders", counted,
             len(recorded.history))
    return recorded
