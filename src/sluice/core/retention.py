"""Retention: delete the history an installation no longer wants to keep.

What goes (everything older than the cut-off): the facts of each message the gateway or the
watcher recorded (`message` and its `recipient_outcome` rows, which feed the dashboard,
reports and `sluice trace`), finished outbox jobs, digest items already sent, ledger rows
past `ledger_retention_days`, and blobs nothing refers to any more. What stays whatever its
age: the shared space's content (posts, comments, library, board, calendar: it is the
content, not its history), pending outbox jobs and their blobs, unsent digest items, sender
notes (they keep the note to a sender one-time), corrections (training data), rules and
analyzer runs.

Deletes run in batches of `batch` rows, one short transaction each, so a gateway writing
beside the pruning waits at most one batch for the database's write lock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, exists, func, select
from sqlmodel import col

from sluice.core.errors import ConfigError
from sluice.core.tables import LedgerEntry, MessageRecord, RecipientOutcome, utcnow
from sluice.core.tables_board import DocumentVersion
from sluice.core.tables_router import PENDING, Blob, DigestItem, OutboxJob
from sluice.core.tables_space import PostAttachment, SpacePost

#: The shortest retention accepted: mail in flight (retries, the outbox deadline, digests
#: of the day) is always younger than this.
MIN_RETENTION = timedelta(days=1)
#: Rows deleted per transaction.
DEFAULT_BATCH = 2000


@dataclass(frozen=True)
class PruneCounts:
    """Rows deleted (or, in a dry run, that would be) per table."""

    message: int = 0
    recipient_outcome: int = 0
    outbox_job: int = 0
    digest_item: int = 0
    ledger: int = 0
    blob: int = 0
    blob_bytes: int = 0

    def lines(self) -> list[str]:
        return [f"{f.name}: {getattr(self, f.name)}" for f in fields(self)]


def prune(engine: Engine, older_than: timedelta, *, ledger_older_than: timedelta | None = None,
          now: datetime | None = None, batch: int = DEFAULT_BATCH,
          dry_run: bool = False) -> PruneCounts:
    """Delete history older than `older_than` (see the module's docstring for what);
    ledger rows older than `ledger_older_than` when given (nodes prune their ledger
    through the store's writer already, and pass None)."""
    if older_than < MIN_RETENTION:
        raise ConfigError(f"retention of {older_than} is shorter than the minimum "
                          f"{MIN_RETENTION}: mail in flight could lose its records")
    if batch < 1:
        raise ConfigError("the batch size must be at least 1")
    moment = now or utcnow()
    cutoff = moment - older_than
    ledger_cutoff = (moment - max(ledger_older_than, MIN_RETENTION)
                     if ledger_older_than is not None else None)
    if dry_run:
        return _count(engine, cutoff, ledger_cutoff)
    outcomes, messages = _prune_messages(engine, cutoff, batch)
    jobs = _in_batches(engine, batch, OutboxJob, select(col(OutboxJob.id)).where(
        *_finished_jobs(cutoff)))
    digests = _in_batches(engine, batch, DigestItem, select(col(DigestItem.id)).where(
        *_sent_digest_items(cutoff)))
    ledger = 0 if ledger_cutoff is None else _in_batches(
        engine, batch, LedgerEntry, select(col(LedgerEntry.id)).where(
            col(LedgerEntry.at) < ledger_cutoff))
    blobs, blob_bytes = _prune_blobs(engine, cutoff, batch)
    return PruneCounts(message=messages, recipient_outcome=outcomes, outbox_job=jobs,
                       digest_item=digests, ledger=ledger, blob=blobs, blob_bytes=blob_bytes)


def _in_batches(engine: Engine, batch: int, table: type, chosen: Any) -> int:
    """Delete the rows of `table` whose ids `chosen` selects, `batch` per transaction."""
    total = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(chosen.limit(batch)).scalars())
            if ids:
                conn.execute(delete(table).where(col(table.id).in_(ids)))  # type: ignore[attr-defined]
        total += len(ids)
        if len(ids) < batch:
            return total


def _prune_messages(engine: Engine, cutoff: datetime, batch: int) -> tuple[int, int]:
    """Messages and their outcomes together, children first (foreign key)."""
    outcomes = messages = 0
    while True:
        with engine.begin() as conn:
            ids = list(conn.execute(select(col(MessageRecord.id)).where(
                col(MessageRecord.received_at) < cutoff).order_by(
                col(MessageRecord.id)).limit(batch)).scalars())
            if ids:
                outcomes += conn.execute(delete(RecipientOutcome).where(
                    col(RecipientOutcome.message_pk).in_(ids))).rowcount
                messages += conn.execute(delete(MessageRecord).where(
                    col(MessageRecord.id).in_(ids))).rowcount
        if len(ids) < batch:
            return outcomes, messages


def _finished_jobs(cutoff: datetime) -> list[Any]:
    return [col(OutboxJob.state) != PENDING, col(OutboxJob.created_at) < cutoff]


def _sent_digest_items(cutoff: datetime) -> list[Any]:
    return [col(DigestItem.sent_at).is_not(None), col(DigestItem.sent_at) < cutoff]


#: Every column that holds the sha256 of a blob. A new one must be added here, or prune
#: would delete blobs it needs (tests/core/test_retention.py checks the tables for more).
BLOB_REFERENCES: tuple[Any, ...] = (
    OutboxJob.raw_sha256, SpacePost.raw_sha256, PostAttachment.sha256, DocumentVersion.sha256)


def _unreferenced(cutoff: datetime, *, jobs_kept_only: bool = False) -> list[Any]:
    """Blobs older than the cut-off that no row points at.
    `jobs_kept_only`: count only the outbox jobs a prune keeps (for the dry run)."""
    sha = col(Blob.sha256)
    conditions = [col(Blob.created_at) < cutoff]
    for reference in BLOB_REFERENCES:
        refers = col(reference) == sha
        if jobs_kept_only and reference is OutboxJob.raw_sha256:
            refers = refers & ((col(OutboxJob.state) == PENDING)
                               | (col(OutboxJob.created_at) >= cutoff))
        conditions.append(~exists().where(refers))
    return conditions


def _prune_blobs(engine: Engine, cutoff: datetime, batch: int) -> tuple[int, int]:
    """Orphaned blobs, the reference check inside the deleting transaction.

    Rows that point at a blob are written together with the blob's own insert (which, for
    content already stored, conflicts and adds nothing). On PostgreSQL a SHARE ROW EXCLUSIVE
    lock on `blob` waits for such transactions under way and holds new ones for the batch,
    so none can commit a reference to a blob this batch deletes; on SQLite the write lock
    taken by BEGIN IMMEDIATE does the same."""
    count = size = 0
    while True:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.begin()
                conn.exec_driver_sql("LOCK TABLE blob IN SHARE ROW EXCLUSIVE MODE")
            rows = conn.execute(select(col(Blob.sha256), col(Blob.size)).where(
                *_unreferenced(cutoff)).limit(batch)).all()
            if rows:
                conn.execute(delete(Blob).where(col(Blob.sha256).in_([r[0] for r in rows])))
            conn.commit()
        count += len(rows)
        size += sum(int(r[1] or 0) for r in rows)
        if len(rows) < batch:
            return count, size


def _count(engine: Engine, cutoff: datetime, ledger_cutoff: datetime | None) -> PruneCounts:
    old_messages = select(col(MessageRecord.id)).where(col(MessageRecord.received_at) < cutoff)
    with engine.connect() as conn:
        def number(statement: Any) -> int:
            return int(conn.execute(statement).scalar() or 0)

        blobs = conn.execute(select(func.count(), func.coalesce(func.sum(col(Blob.size)), 0))
                             .where(*_unreferenced(cutoff, jobs_kept_only=True))).one()
        return PruneCounts(
            message=number(select(func.count()).select_from(old_messages.subquery())),
            recipient_outcome=number(select(func.count()).where(
                col(RecipientOutcome.message_pk).in_(old_messages))),
            outbox_job=number(select(func.count()).where(*_finished_jobs(cutoff))),
            digest_item=number(select(func.count()).where(*_sent_digest_items(cutoff))),
            ledger=0 if ledger_cutoff is None else number(
                select(func.count()).where(col(LedgerEntry.at) < ledger_cutoff)),
            blob=int(blobs[0]), blob_bytes=int(blobs[1]))
