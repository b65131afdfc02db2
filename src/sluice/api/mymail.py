"""A person's own diverted mail (the trace, reused from reports) and their corrections.

A correction stores the raw message with the category the person says it is, for the next
`sluice train`. Only diverted mail has its raw message kept (as a blob of its outbox job),
so only diverted mail can be corrected; "this should have stayed mail" is recorded as the
category `direct` (personal mail that the rules never divert).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from sluice.core.decision import DELIVER
from sluice.core.tables import Correction, MessageRecord, RecipientOutcome, utcnow
from sluice.core.tables_router import Blob, OutboxJob
from sluice.core.verdict import CATEGORIES
from sluice.reports.trace import MessageTrace, normalize_message_id, trace
from sluice.router.decide import DIRECT

#: The trace page looks this far back.
MAIL_DAYS = 30


class CorrectionError(ValueError):
    """A correction that cannot be recorded; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Recorded:
    correction_id: int
    message_id: str
    previous_category: str | None
    category: str


def diverted_mail(engine: Engine, user: str, *, days: int = MAIL_DAYS,
                  now: datetime | None = None, limit: int = 200) -> list[MessageTrace]:
    """The trace of `user`'s mail of the last `days` that a rule took out of the inbox
    (or would have, in audit mode), newest first; only `user`'s own lines."""
    since = (now or utcnow()) - timedelta(days=days)
    traces = trace(engine, recipient=user.lower(), since=since, limit=limit)
    return [t for t in traces if any(line.action != DELIVER for line in t.lines)]


def record_correction(engine: Engine, user: str, message_id: str, category: str) -> Recorded:
    """Record that `user`'s message `message_id` is of `category`.

    Refused (404) unless `user` was a recipient of it, and (409) when its raw message was
    not kept because it was never diverted.
    """
    if category not in CATEGORIES:
        raise CorrectionError(422, f"unknown category '{category}' "
                                   f"(known: {', '.join(CATEGORIES)})")
    wanted = normalize_message_id(message_id)
    mine = select(col(RecipientOutcome.message_pk)).where(
        func.lower(col(RecipientOutcome.recipient)) == user.lower())
    with Session(engine) as session:
        record = session.exec(select(MessageRecord).where(
            col(MessageRecord.message_id) == wanted, col(MessageRecord.id).in_(mine))
            .order_by(col(MessageRecord.id).desc())).first()
        if record is None:
            raise CorrectionError(404, "no message with this Message-ID was sent to you")
        raw = session.exec(select(Blob.data).join(
            OutboxJob, col(OutboxJob.raw_sha256) == col(Blob.sha256)).where(
            col(OutboxJob.fingerprint) == record.fingerprint)).first()
        if raw is None:
            raise CorrectionError(409, "Sluice did not keep this message (only diverted "
                                       "mail is stored), so it cannot be learnt from")
        correction = Correction(message_id=record.message_id, fingerprint=record.fingerprint,
                                previous_category=record.category, category=category,
                                corrected_by=user.lower(), raw=bytes(raw))
        session.add(correction)
        session.commit()
        session.refresh(correction)
        return Recorded(correction.id or 0, record.message_id, record.category, category)


STAYED_MAIL = DIRECT
