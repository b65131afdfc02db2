"""The gateway's one door to the database: a writer thread with group commit.

Every SMTP session needs a durable commit before it may answer 250. An fsync per message
would cap throughput at the disk's sync rate, so concurrent sessions' work is gathered
into one transaction: each caller still waits until *its* work is committed. Ledger
look-ups go through a reader thread with its own connection, so they never wait behind a
batch's fsync (WAL lets readers and the writer run side by side).

This is the gateway's hot path, so it speaks plain SQL through the DB-API connection:
building SQLAlchemy statements per message cost more CPU than the relay itself
(docs/performance.md). The tables are still defined once, in core/tables*.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic_core import PydanticUndefined
from sqlalchemy import DateTime, Engine

from sluice.core.errors import StorageUnavailable
from sluice.core.rawsql import bind, bind_times, driver_sql, insert_sql
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
    blobs: tuple[dict[str, Any], ...] = field(default=())  # Blob rows (raw diverted mail)
    #: The message row is committed already (mixed mail's second record): not inserted again.
    message_recorded: bool = False


class _DbThread:
    """One thread, one connection, batches of work; each caller awaits its own result."""

    def __init__(self, engine: Engine, name: str, *, commit: bool) -> None:
        self.engine = engine
        self.commit = commit
        self.sql = _Sql(engine)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def call(self, work: Callable[[Any, _Sql], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((work, future, loop))
        return await future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
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
        finally:
            if self._conn is not None:
                self._conn.close()

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.engine.raw_connection()
        return self._conn

    def _run_batch(self, batch: list[Any]) -> None:
        try:
            conn = self._connection()
            cursor = conn.cursor()
            try:
                results = [work(cursor, self.sql) for work, _, _ in batch]
            finally:
                cursor.close()
            conn.commit() if self.commit else conn.rollback()
        except Exception:
            self._reset()
            if len(batch) > 1:  # isolate the failing caller; the others still commit
                for item in batch:
                    self._run_batch([item])
                return
            log.exception("database %s failed", "write" if self.commit else "read")
            _, future, loop = batch[0]
            loop.call_soon_threadsafe(_fail, future)
            return
        # One wake-up of each event loop per batch, not one per caller: every
        # call_soon_threadsafe writes to the loop's self-pipe (a system call).
        done: dict[Any, list[tuple[asyncio.Future[Any], Any]]] = {}
        for (_, future, loop), result in zip(batch, results, strict=True):
            done.setdefault(loop, []).append((future, result))
        for loop, resolved in done.items():
            loop.call_soon_threadsafe(_resolve_all, resolved)

    def _reset(self) -> None:
        """After an error: roll back; a broken connection is replaced on next use."""
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except Exception:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = _DbThread(engine, "sluice-store-writer", commit=True)
        self._reader = _DbThread(engine, "sluice-store-reader", commit=False)
        #: SQLite answers an indexed look-up in microseconds, less than a hop to a thread
        #: costs; such look-ups run inline on the event loop with their own connection.
        self._inline_sql = _Sql(engine) if engine.dialect.name == "sqlite" else None
        self._inline_conn: Any = None

    async def delivered(self, fingerprint: str) -> dict[str, str]:
        """Recipients that already have this message, with the reply they got."""
        if self._inline_sql is None:
            return await self._reader.call(
                lambda cur, sql: _ledger_lookup(cur, sql, fingerprint))
        try:
            if self._inline_conn is None:
                self._inline_conn = self.engine.raw_connection()
            cursor = self._inline_conn.cursor()
            try:
                return _ledger_lookup(cursor, self._inline_sql, fingerprint)
            finally:
                cursor.close()
                self._inline_conn.rollback()  # end the read transaction: see new commits
        except Exception as exc:
            log.exception("ledger look-up failed")
            with contextlib.suppress(Exception):
                self._inline_conn.close()
            self._inline_conn = None
            raise StorageUnavailable("database unavailable") from exc

    async def record(self, facts: MessageFacts) -> None:
        rows = _rows(self._writer.sql, facts)
        await self._writer.call(lambda cur, sql: _record(cur, sql, rows))

    async def prune_ledger(self, older_than: timedelta) -> int:
        cutoff = utcnow() - older_than
        return await self._writer.call(lambda cur, sql: _prune(cur, sql, cutoff))

    def close(self) -> None:
        self._writer.close()
        self._reader.close()
        if self._inline_conn is not None:
            self._inline_conn.close()


class _Sql:
    """The hot path's statements, in the driver's parameter style, built once."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self.sqlite = self.dialect == "sqlite"
        self.ledger_lookup = self._q(
            "SELECT recipient, reply FROM ledger WHERE fingerprint = :fingerprint")
        self.insert_message = self._insert("message", MESSAGE_COLUMNS, "fingerprint")
        # The message's id comes from its fingerprint inside the statement: no round trip.
        self.insert_outcome = self._q(
            "INSERT INTO recipient_outcome ("
            + ", ".join(f'"{c}"' for c in OUTCOME_COLUMNS) + ") VALUES ("
            + ", ".join("(SELECT id FROM message WHERE fingerprint = :fingerprint)"
                        if c == "message_pk" else f":{c}" for c in OUTCOME_COLUMNS) + ")")
        self.insert_ledger = self._insert("ledger", LEDGER_COLUMNS, "fingerprint, recipient")
        self.insert_outbox = self._insert("outbox_job", OUTBOX_COLUMNS, "key")
        self.insert_digest = self._insert("digest_item", DIGEST_COLUMNS, '"user", fingerprint')
        self.insert_blob = self._insert("blob", BLOB_COLUMNS, "sha256")
        self.prune = self._q("DELETE FROM ledger WHERE at < :cutoff")

    def _q(self, text: str) -> str:
        return driver_sql(self.dialect, text)

    def _insert(self, table: str, columns: tuple[str, ...], conflict: str | None) -> str:
        return self._q(insert_sql(table, columns, conflict))

    def bind(self, row: dict[str, Any]) -> dict[str, Any]:
        """SQLite gets datetimes in SQLAlchemy's storage format, so both read them alike."""
        return bind(self.dialect, row) if self.sqlite else row

    def bind_times(self, row: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
        """`bind` for a fresh row whose datetime columns are `times`."""
        return bind_times(self.dialect, row, times)


def _columns(table: Any) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name != "id")


def _times(table: Any) -> tuple[str, ...]:
    """The table's datetime columns: the only values SQLite needs converted."""
    return tuple(c.name for c in table.columns
                 if isinstance(getattr(c.type, "impl", c.type), DateTime))


def _defaults(model: Any) -> dict[str, Any]:
    return {name: field.default for name, field in model.model_fields.items()
            if name != "id" and field.default_factory is None
            and field.default is not PydanticUndefined}


MESSAGE_COLUMNS = _columns(MessageRecord.__table__)  # type: ignore[attr-defined]
MESSAGE_DEFAULTS = _defaults(MessageRecord)
OUTCOME_COLUMNS = _columns(RecipientOutcome.__table__)  # type: ignore[attr-defined]
LEDGER_COLUMNS = _columns(LedgerEntry.__table__)  # type: ignore[attr-defined]
OUTBOX_COLUMNS = _columns(OutboxJob.__table__)  # type: ignore[attr-defined]
MESSAGE_TIMES = _times(MessageRecord.__table__)  # type: ignore[attr-defined]
OUTBOX_TIMES = _times(OutboxJob.__table__)  # type: ignore[attr-defined]
OUTBOX_DEFAULTS = _defaults(OutboxJob)
OUTBOX_START = {**OUTBOX_DEFAULTS, "claimed_until": None, "done_at": None}
DIGEST_COLUMNS = _columns(DigestItem.__table__)  # type: ignore[attr-defined]
DIGEST_START = {"sent_at": None}
BLOB_COLUMNS = ("sha256", "size", "data", "created_at")


def _resolve_all(resolved: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in resolved:
        if not future.done():
            future.set_result(result)


def _fail(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(StorageUnavailable("database unavailable"))


def _ledger_lookup(cur: Any, sql: _Sql, fingerprint: str) -> dict[str, str]:
    cur.execute(sql.ledger_lookup, {"fingerprint": fingerprint})
    return {recipient: reply for recipient, reply in cur.fetchall()}


def _prune(cur: Any, sql: _Sql, cutoff: datetime) -> int:
    cur.execute(sql.prune, sql.bind({"cutoff": cutoff}))
    return int(cur.rowcount)


@dataclass(frozen=True, slots=True)
class _Rows:
    """A message's rows, bound for the driver: built on the event loop so that the writer
    thread only runs the driver's C code and holds the GIL as little as possible."""

    fingerprint: str
    message: dict[str, Any] | None  # None: committed already
    outcomes: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    digest: list[dict[str, Any]]
    blobs: list[dict[str, Any]]


def _rows(sql: _Sql, facts: MessageFacts) -> _Rows:
    now = utcnow()
    fingerprint = facts.message["fingerprint"]
    at = sql.bind_times({"at": now}, ("at",))["at"]
    message = None
    if not facts.message_recorded:
        merged = {**MESSAGE_DEFAULTS, "received_at": now, **facts.message}
        message = sql.bind_times({c: merged.get(c) for c in MESSAGE_COLUMNS}, MESSAGE_TIMES)
    return _Rows(
        fingerprint=fingerprint,
        message=message,
        outcomes=[{
            "fingerprint": fingerprint, "recipient": o.recipient, "action": o.action,
            "status": o.status, "reply": o.reply[:1024], "rule": o.rule,
            "destination": o.destination, "mode": o.mode, "at": at,
        } for o in facts.outcomes],
        ledger=[{
            "fingerprint": fingerprint, "recipient": r, "reply": reply[:1024], "at": at,
        } for r, reply in facts.delivered],
        outbox=[sql.bind_times(_complete(OUTBOX_COLUMNS, OUTBOX_START, row), OUTBOX_TIMES)
                for row in facts.outbox],
        digest=[sql.bind(_complete(DIGEST_COLUMNS, DIGEST_START, row)) for row in facts.digest],
        blobs=[sql.bind(dict(row)) for row in facts.blobs],
    )


def _complete(columns: tuple[str, ...], start: dict[str, Any],
              row: dict[str, Any]) -> dict[str, Any]:
    """`row` with every column of the statement, defaults where it has none."""
    merged = {**start, **row}
    return {c: merged.get(c) for c in columns}


def _record(cur: Any, sql: _Sql, rows: _Rows) -> None:
    if rows.blobs:
        cur.executemany(sql.insert_blob, rows.blobs)
    if rows.message is not None:
        cur.execute(sql.insert_message, rows.message)
    if rows.outcomes:
        cur.executemany(sql.insert_outcome, rows.outcomes)
    if rows.ledger:
        cur.executemany(sql.insert_ledger, rows.ledger)
    if rows.outbox:
        cur.executemany(sql.insert_outbox, rows.outbox)
    if rows.digest:
        cur.executemany(sql.insert_digest, rows.digest)
