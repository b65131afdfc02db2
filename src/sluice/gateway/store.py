"""The gateway's one door to the database: a writer thread with group commit.

Every SMTP session needs a durable commit before it may answer 250. An fsync per message
would cap throughput at the disk's sync rate, so concurrent sessions' work is gathered
into one transaction: each caller still waits until *its* work is committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, insert, select
from sqlmodel import col

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.errors import StorageUnavailable
from sluice.core.tables import LedgerEntry, MessageRecord, RecipientOutcome, utcnow
from sluice.core.tables_router import DigestItem, OutboxJob

log = logging.getLogger(__name__)

T = TypeVar("T")
#: At most this many callers share one transaction.
MAX_BATCH = 128

_STOP = object()


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    recipient: str
    action: str
    status: str
    reply: str
    rule: str = ""
    destination: str = ""
    mode: str = "enforce"


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """Everything recorded about one message transaction (no body)."""

    message: dict[str, Any]
    outcomes: tuple[OutcomeRow, ...]
    delivered: tuple[tuple[str, str], ...] = field(default=())  # (recipient, reply) for ledger
    outbox: tuple[dict[str, Any], ...] = field(default=())  # OutboxJob rows
    digest: tuple[dict[str, Any], ...] = field(default=())  # DigestItem rows


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sluice-store", daemon=True)
        self._thread.start()

    # -- public, async -------------------------------------------------------------------

    async def delivered(self, fingerprint: str) -> dict[str, str]:
        """Recipients that already have this message, with the reply they got."""
        return await self._call(lambda conn: _ledger_lookup(conn, fingerprint))

    async def record(self, facts: MessageFacts) -> int:
        return await self._call(lambda conn: _record(conn, facts))

    async def prune_ledger(self, older_than: timedelta) -> int:
        cutoff = utcnow() - older_than
        statement = delete(LedgerEntry).where(col(LedgerEntry.at) < cutoff)
        return await self._call(lambda conn: conn.execute(statement).rowcount)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    # -- internals -----------------------------------------------------------------------

    async def _call(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((work, future, loop))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(item)
            self._run_batch(batch)

    def _run_batch(self, batch: list[Any]) -> None:
        try:
            with self.engine.begin() as conn:
                results = [work(conn) for work, _, _ in batch]
        except Exception:
            if len(batch) > 1:  # isolate the failing caller; the others still commit
                for item in batch:
                    self._run_batch([item])
                return
            log.exception("database write failed")
            _, future, loop = batch[0]
            loop.call_soon_threadsafe(_fail, future)
            return
        for (_, future, loop), result in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_resolve, future, result)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(StorageUnavailable("database unavailable"))


def _ledger_lookup(conn: Connection, fingerprint: str) -> dict[str, str]:
    rows = conn.execute(
        select(col(LedgerEntry.recipient), col(LedgerEntry.reply)).where(
            col(LedgerEntry.fingerprint) == fingerprint
        )
    )
    return {recipient: reply for recipient, reply in rows}


def _record(conn: Connection, facts: MessageFacts) -> int:
    message = MessageRecord.__table__  # type: ignore[attr-defined]
    insert_ignoring_conflicts(conn, message, [facts.message], ["fingerprint"])
    pk = conn.execute(
        select(col(MessageRecord.id)).where(
            col(MessageRecord.fingerprint) == facts.message["fingerprint"])
    ).scalar_one()
    now = utcnow()
    if facts.outcomes:
        conn.execute(
            insert(RecipientOutcome.__table__),  # type: ignore[attr-defined]
            [
                {
                    "message_pk": pk,
                    "recipient": o.recipient,
                    "action": o.action,
                    "status": o.status,
                    "reply": o.reply[:1024],
                    "rule": o.rule,
                    "destination": o.destination,
                    "mode": o.mode,
                    "at": now,
                }
                for o in facts.outcomes
            ],
        )
    insert_ignoring_conflicts(
        conn,
        LedgerEntry.__table__,  # type: ignore[attr-defined]
        [
            {"fingerprint": facts.message["fingerprint"], "recipient": r, "reply": reply[:1024],
             "at": now}
            for r, reply in facts.delivered
        ],
        ["fingerprint", "recipient"],
    )
    assert pk is not None
    insert_ignoring_conflicts(conn, OutboxJob.__table__, list(facts.outbox),  # type: ignore[attr-defined]
                   ["key"])
    insert_ignoring_conflicts(conn, DigestItem.__table__, list(facts.digest),  # type: ignore[attr-defined]
                   ["user", "fingerprint"])
    return int(pk)
