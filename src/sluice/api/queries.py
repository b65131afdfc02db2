"""Read-only query functions over the core tables; the web app and reports use these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from sluice.core.tables import MessageRecord, RecipientOutcome

#: Pages never list more than this many messages at once.
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class OutcomeView:
    recipient: str
    action: str
    status: str
    reply: str
    rule: str


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    received_at: datetime
    message_id: str
    mail_from: str
    subject: str | None
    size: int
    category: str | None
    confidence: float | None
    outcomes: tuple[OutcomeView, ...]


def recent_messages(engine: Engine, limit: int = 50) -> list[MessageView]:
    limit = max(1, min(limit, MAX_PAGE))
    with Session(engine) as session:
        rows = session.exec(
            select(MessageRecord).order_by(col(MessageRecord.id).desc()).limit(limit)
        ).all()
        ids = [m.id for m in rows if m.id is not None]
        outcomes: dict[int, list[OutcomeView]] = {}
        for o in session.exec(
            select(RecipientOutcome).where(col(RecipientOutcome.message_pk).in_(ids))
        ).all():
            outcomes.setdefault(o.message_pk, []).append(
                OutcomeView(o.recipient, o.action, o.status, o.reply, o.rule))
        return [
            MessageView(m.id or 0, m.received_at, m.message_id, m.mail_from, m.subject, m.size,
                        m.category, m.confidence, tuple(outcomes.get(m.id or 0, ())))
            for m in rows
        ]


def status_counts(engine: Engine) -> dict[str, int]:
    """Recipient outcomes by status (delivered, rejected, deferred, duplicate...)."""
    with Session(engine) as session:
        rows = session.exec(
            select(col(RecipientOutcome.status), func.count()).group_by(
                col(RecipientOutcome.status))
        ).all()
    return {status: count for status, count in rows}


def inbox_counts(engine: Engine) -> dict[str, int]:
    """Messages delivered per recipient, busiest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(col(RecipientOutcome.recipient), func.count())
            .where(col(RecipientOutcome.status) == "delivered")
            .group_by(col(RecipientOutcome.recipient))
            .order_by(func.count().desc())
        ).all()
    return {recipient: count for recipient, count in rows}


def message_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(MessageRecord)).one())
