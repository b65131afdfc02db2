"""trace: "where did my mail go?" — every recipient's fate for a message, with the reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sluice.core.tables import MessageRecord, RecipientOutcome
from sluice.core.tables_router import OutboxJob

#: A trace by recipient lists at most this many messages.
MAX_TRACE = 1000


@dataclass(frozen=True, slots=True)
class TraceLine:
    recipient: str
    action: str
    mode: str
    status: str
    rule: str
    destination: str
    link: str  # where the post is, once published
    post_state: str  # pending | done | fallback | "" (not posted)
    reply: str


@dataclass(frozen=True, slots=True)
class MessageTrace:
    message_id: str
    received_at: datetime
    mail_from: str
    subject: str | None
    category: str | None
    confidence: float | None
    reasons: tuple[str, ...]
    model_version: str | None
    lines: tuple[TraceLine, ...]


def normalize_message_id(value: str) -> str:
    value = value.strip()
    return value if value.startswith("<") else f"<{value}>"


def trace(engine: Engine, *, message_id: str | None = None, recipient: str | None = None,
          since: datetime | None = None, limit: int = 100) -> list[MessageTrace]:
    """Traces of the matching messages, newest first."""
    limit = max(1, min(limit, MAX_TRACE))
    with Session(engine) as session:
        query = select(MessageRecord)
        if message_id:
            query = query.where(col(MessageRecord.message_id) == normalize_message_id(message_id))
        if since is not None:
            query = query.where(col(MessageRecord.received_at) >= since)
        if recipient:
            query = query.where(col(MessageRecord.id).in_(
                select(col(RecipientOutcome.message_pk)).where(
                    col(RecipientOutcome.recipient) == recipient)))
        messages = session.exec(query.order_by(col(MessageRecord.id).desc()).limit(limit)).all()
        result = []
        for message in messages:
            jobs = {job.destination: job for job in session.exec(
                select(OutboxJob).where(col(OutboxJob.fingerprint) == message.fingerprint))}
            outcomes = session.exec(select(RecipientOutcome).where(
                col(RecipientOutcome.message_pk) == message.id).order_by(
                col(RecipientOutcome.id))).all()
            lines = []
            for o in outcomes:
                if recipient and o.recipient != recipient:
                    continue
                job = jobs.get(o.destination) if o.destination else None
                lines.append(TraceLine(
                    recipient=o.recipient, action=o.action, mode=o.mode, status=o.status,
                    rule=o.rule, destination=o.destination,
                    link=job.link if job is not None else "",
                    post_state=job.state if job is not None and o.mode == "enforce" else "",
                    reply=o.reply))
            result.append(MessageTrace(
                message_id=message.message_id, received_at=message.received_at,
                mail_from=message.mail_from, subject=message.subject,
                category=message.category, confidence=message.confidence,
                reasons=tuple((message.reasons or "").splitlines()),
                model_version=message.model_version, lines=tuple(lines)))
        return result


def format_trace(traces: list[MessageTrace]) -> str:
    """Readable text for the terminal."""
    out: list[str] = []
    for t in traces:
        verdict = (f"{t.category} ({t.confidence:.0%})" if t.category and t.confidence is not None
                   else "not classified")
        out.append(f"{t.message_id or '(no Message-ID)'}  {t.received_at:%Y-%m-%d %H:%M} UTC")
        out.append(f"  from {t.mail_from or '<>'}: {t.subject or ''}")
        out.append(f"  verdict: {verdict}")
        out.extend(f"    because {reason}" for reason in t.reasons)
        for line in t.lines:
            where = f" → {line.destination}" if line.destination else ""
            rule = f" by rule {line.rule}" if line.rule else " (no rule: stays mail)"
            audit = " [audit: not applied]" if line.mode == "audit" else ""
            post = f", post {line.post_state}" if line.post_state else ""
            link = f" {line.link}" if line.link else ""
            out.append(f"  {line.recipient}: {line.action}{where}{rule}{audit} — "
                       f"{line.status}{post}{link}")
        out.append("")
    return "\n".join(out)
