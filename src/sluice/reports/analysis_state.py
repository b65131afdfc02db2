"""The analyzer's state: one SQLite file holding each run's partial aggregates and the keys
of the messages already counted, committed together batch by batch.

A run is identified by what it analyzes and how (sources, folders, rules, settings that
shape the stored counters). Starting `sluice analyze` again with the same identity while an
unfinished run exists continues that run: keys already in `done` are not read again, and
the counters hold exactly the messages whose keys are there (same transaction). Memory use is
a batch; threads, attachments and re-send candidates live on disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sluice.reports.analysis import Batch

#: Keys looked up per statement when a reader asks which of its messages are done.
_LOOKUP_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY, identity TEXT NOT NULL, sources TEXT NOT NULL,
    started TEXT NOT NULL, finished TEXT);
CREATE INDEX IF NOT EXISTS run_identity ON run (identity, finished);
CREATE TABLE IF NOT EXISTS done (
    run INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (run, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    run INTEGER NOT NULL, kind TEXT NOT NULL, k1 TEXT NOT NULL, k2 TEXT NOT NULL,
    messages INTEGER NOT NULL, deliveries INTEGER NOT NULL, diverted INTEGER NOT NULL,
    audit INTEGER NOT NULL, PRIMARY KEY (run, kind, k1, k2)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thread (
    run INTEGER NOT NULL, key TEXT NOT NULL, subject TEXT NOT NULL, messages INTEGER NOT NULL,
    replies INTEGER NOT NULL, wide_replies INTEGER NOT NULL, max_recipients INTEGER NOT NULL,
    deliveries INTEGER NOT NULL, first REAL, last REAL, PRIMARY KEY (run, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attachment (
    run INTEGER NOT NULL, sha256 TEXT NOT NULL, filename TEXT NOT NULL, size INTEGER NOT NULL,
    messages INTEGER NOT NULL, deliveries INTEGER NOT NULL,
    PRIMARY KEY (run, sha256)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent (
    run INTEGER NOT NULL, sender TEXT NOT NULL, fp TEXT NOT NULL, ts REAL NOT NULL,
    subject TEXT NOT NULL, recipients TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sent_fp ON sent (run, fp, sender, ts);
CREATE TABLE IF NOT EXISTS message_id (
    run INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (run, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS skipped (
    run INTEGER NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, reason TEXT NOT NULL,
    detail TEXT NOT NULL, PRIMARY KEY (run, key)) WITHOUT ROWID;
"""

_UPSERT_COUNTS = """
INSERT INTO counts (run, kind, k1, k2, messages, deliveries, diverted, audit)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run, kind, k1, k2) DO UPDATE SET
  messages = messages + excluded.messages, deliveries = deliveries + excluded.deliveries,
  diverted = diverted + excluded.diverted, audit = audit + excluded.audit
"""
_UPSERT_THREAD = """
INSERT INTO thread (run, key, subject, messages, replies, wide_replies, max_recipients,
                    deliveries, first, last)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run, key) DO UPDATE SET
  subject = min(subject, excluded.subject), messages = messages + excluded.messages,
  replies = replies + excluded.replies, wide_replies = wide_replies + excluded.wide_replies,
  max_recipients = max(max_recipients, excluded.max_recipients),
  deliveries = deliveries + excluded.deliveries,
  first = coalesce(min(first, excluded.first), first, excluded.first),
  last = coalesce(max(last, excluded.last), last, excluded.last)
"""
_UPSERT_ATTACHMENT = """
INSERT INTO attachment (run, sha256, filename, size, messages, deliveries)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (run, sha256) DO UPDATE SET
  filename = min(filename, excluded.filename), messages = messages + excluded.messages,
  deliveries = deliveries + excluded.deliveries
"""


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: int
    started: datetime
    resumed: bool
    done: int


def _now() -> str:
    return datetime.now(UTC).isoformat()


class AnalysisState:
    """The state file, opened by one analysis at a time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # A lost last batch after a power cut is recomputed by the resumed run.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def begin(self, identity: str, sources: str) -> RunInfo:
        """Continue the unfinished run of this identity, or start a new one."""
        row = self.db.execute(
            "SELECT id, started FROM run WHERE identity = ? AND finished IS NULL "
            "ORDER BY id DESC LIMIT 1", (identity,)).fetchone()
        if row is not None:
            done = self.db.execute("SELECT count(*) FROM done WHERE run = ?",
                                   (row[0],)).fetchone()[0]
            return RunInfo(int(row[0]), datetime.fromisoformat(row[1]), True, int(done))
        started = _now()
        cursor = self.db.execute(
            "INSERT INTO run (identity, sources, started) VALUES (?, ?, ?)",
            (identity, sources, started))
        return RunInfo(int(cursor.lastrowid or 0), datetime.fromisoformat(started), False, 0)

    def done_filter(self, run: int) -> DoneLookup:
        return DoneLookup(self.db, run)

    def flush(self, run: int, batch: Batch) -> None:
        """Add a batch's counters and mark its keys done, in one transaction."""
        if not batch.size:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_UPSERT_COUNTS, [(run, *key, *row)
                                            for key, row in batch.counts.items()])
            db.executemany(_UPSERT_THREAD, [
                (run, key, t.subject, t.messages, t.replies, t.wide_replies, t.max_recipients,
                 t.deliveries, t.first, t.last) for key, t in batch.threads.items()])
            db.executemany(_UPSERT_ATTACHMENT, [
                (run, sha, a.filename, a.size, a.messages, a.deliveries)
                for sha, a in batch.attachments.items()])
            db.executemany("INSERT INTO sent VALUES (?, ?, ?, ?, ?, ?)", [
                (run, s.sender, s.fingerprint, s.timestamp, s.subject, s.recipients)
                for s in batch.sent])
            db.executemany("INSERT OR IGNORE INTO skipped VALUES (?, ?, ?, ?, ?)", [
                (run, s.key, s.name, s.reason, s.detail) for s in batch.skips])
            db.executemany("INSERT OR IGNORE INTO message_id VALUES (?, ?)",
                           [(run, mid) for mid in batch.message_ids])
            db.executemany("INSERT OR IGNORE INTO done VALUES (?, ?)",
                           [(run, key) for key in batch.done])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def finish(self, run: int) -> None:
        self.db.execute("UPDATE run SET finished = ? WHERE id = ?", (_now(), run))

    def forget(self, run: int) -> None:
        """Drop a finished run's rows (its report has been written)."""
        self.db.execute("BEGIN IMMEDIATE")
        for table in ("done", "counts", "thread", "attachment", "sent", "skipped",
                      "message_id"):
            self.db.execute(f"DELETE FROM {table} WHERE run = ?", (run,))
        self.db.execute("DELETE FROM run WHERE id = ?", (run,))
        self.db.execute("COMMIT")

    def counted_message_ids(self, run: int, message_ids: Sequence[str]) -> set[str]:
        """Which of these Message-IDs earlier batches of the run counted (one query per
        `_LOOKUP_CHUNK`, not one per message)."""
        return _present(self.db, "SELECT id FROM message_id WHERE run = ? AND id IN ({})",
                        run, message_ids)

    # --- what the report reads --------------------------------------------------------------

    def counts(self, run: int, kind: str, *, order: str = "k1, k2",
               limit: int = -1) -> list[tuple[str, str, int, int, int, int]]:
        return [tuple(r) for r in self.db.execute(
            "SELECT k1, k2, messages, deliveries, diverted, audit FROM counts "
            f"WHERE run = ? AND kind = ? ORDER BY {order} LIMIT ?",
            (run, kind, limit))]

    def count_rows(self, run: int, kind: str) -> int:
        return int(self.db.execute("SELECT count(*) FROM counts WHERE run = ? AND kind = ?",
                                   (run, kind)).fetchone()[0])

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        return [tuple(r) for r in self.db.execute(sql, params)]

    def resend_candidates(self, run: int, window: float) -> Iterator[tuple[object, ...]]:
        """Pairs (earlier, later) of one sender's messages with one fingerprint within the
        window, later first by time; recipients are compared by the caller."""
        return self.db.execute(
            "SELECT b.rowid, a.ts, b.ts, b.sender, b.subject, a.recipients, b.recipients "
            "FROM sent a JOIN sent b ON b.run = a.run AND b.fp = a.fp AND b.sender = a.sender "
            "AND b.ts > a.ts AND b.ts <= a.ts + ? WHERE a.run = ? ORDER BY b.ts, b.rowid, a.ts",
            (window, run))


class DoneLookup:
    """The done-filter readers call: which of these keys has this run already counted."""

    def __init__(self, db: sqlite3.Connection, run: int) -> None:
        self.db = db
        self.run = run

    def __call__(self, keys: Sequence[str]) -> Collection[str]:
        return _present(self.db, "SELECT key FROM done WHERE run = ? AND key IN ({})",
                        self.run, keys)


def _present(db: sqlite3.Connection, sql: str, run: int, values: Sequence[str]) -> set[str]:
    """The values the query (`{}` = the placeholders) finds, asked `_LOOKUP_CHUNK` at once."""
    found: set[str] = set()
    for start in range(0, len(values), _LOOKUP_CHUNK):
        chunk = values[start:start + _LOOKUP_CHUNK]
        found.update(row[0] for row in db.execute(sql.format(",".join("?" * len(chunk))),
                                                  (run, *chunk)))
    return found
