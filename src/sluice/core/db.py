"""Database engine with the durability Sluice promises: a commit survives a crash.

SQLite runs in WAL mode with synchronous=FULL (checked after connecting); PostgreSQL must
not run with synchronous_commit=off. Settings that weaken this refuse to start.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, event, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlmodel import create_engine

from sluice.core.errors import ConfigError
from sluice.core.settings import Settings

log = logging.getLogger(__name__)

#: pg_advisory_lock key held while the schema is upgraded ("sluice" in ASCII).
SCHEMA_LOCK_KEY = 0x736C75696365
#: How long a node waits for another node's schema upgrade on SQLite before giving up.
SCHEMA_LOCK_WAIT_SECONDS = 600
#: How long a SQLite writer waits for the lock before the caller sees a temporary error.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: How long a new PostgreSQL connection may take before the caller sees a temporary error.
PG_CONNECT_TIMEOUT_S = 10


def make_engine(settings: Settings) -> Engine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        return _sqlite_engine(url, settings.sqlite_synchronous)
    # A database that does not answer must not hold SMTP sessions for the kernel's TCP
    # time-out: after PG_CONNECT_TIMEOUT_S the session gets its 451 and the client retries.
    engine = create_engine(url, pool_pre_ping=True,
                           connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})
    _check_postgres_durability(engine)
    return engine


def _sqlite_engine(url: str, synchronous: str) -> Engine:
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    with engine.connect() as conn:
        level = conn.execute(text("PRAGMA synchronous")).scalar()
        mode = conn.execute(text("PRAGMA journal_mode")).scalar()
    # 2 = FULL, 3 = EXTRA
    if level is None or int(level) < 2:
        raise ConfigError(f"SQLite synchronous level is {level}, need FULL (2) or EXTRA (3)")
    if str(mode).lower() != "wal" and path != ":memory:":
        raise ConfigError(f"SQLite journal_mode is {mode}, need WAL")
    return engine


def _check_postgres_durability(engine: Engine) -> None:
    with engine.connect() as conn:
        setting = conn.execute(text("SHOW synchronous_commit")).scalar()
        fsync = conn.execute(text("SHOW fsync")).scalar()
    if str(setting).lower() == "off" or str(fsync).lower() == "off":
        raise ConfigError(
            f"PostgreSQL synchronous_commit={setting}, fsync={fsync}: acknowledged mail "
            "could be lost; turn both on"
        )


def init_schema(engine: Engine) -> None:
    """Bring the database to the newest revision; one query when it is there already.

    Several nodes may start at once on one database: the upgrade runs under a lock (an
    advisory lock on PostgreSQL, the write lock on SQLite) and each node looks again once it
    holds it, so the first does the work and the others find it done.
    """
    from sluice.core import migrations  # Alembic is imported when a database is opened

    with engine.connect() as conn:
        if migrations.current_revisions(conn) == (migrations.head(),):
            return
    with schema_lock(engine) as conn:
        upgrade_locked(conn)


def upgrade_locked(conn: Connection, target: str = "head") -> None:
    """Upgrade on a connection that holds the schema lock; stamps a create_all database."""
    from sluice.core import migrations
    from sluice.core.migrations import legacy

    current = migrations.current_revisions(conn)
    known = set(migrations.revision_numbers())
    if unknown := [revision for revision in current if revision not in known]:
        raise ConfigError(
            f"the database is at revision {', '.join(unknown)}, which this Sluice does not "
            "know: a newer version upgraded it; run that version here too")
    if not current and legacy.is_legacy(conn):
        problems = legacy.differences(conn)
        if problems:
            raise ConfigError(
                "the database was made by a Sluice without migrations and its tables differ "
                f"from revision {legacy.FIRST}, so it cannot be upgraded safely: "
                + "; ".join(problems) + ". Keep it as a backup and point Sluice at a new, "
                "empty database (another --data-dir or --database-url), or change the old "
                "one by hand until it matches and run `sluice db upgrade`")
        log.warning("database made before migrations: stamped with revision %s", legacy.FIRST)
        migrations.stamp(conn, legacy.FIRST)
    if target != "head" or current != (migrations.head(),):
        migrations.upgrade(conn, target)


@contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other node's schema change runs beside.

    PostgreSQL: a session advisory lock (it outlasts a revision that commits on its own, as
    CREATE INDEX CONCURRENTLY must), then one transaction: DDL is transactional there.
    SQLite: BEGIN IMMEDIATE takes the database's write lock for the whole upgrade; foreign
    keys are off meanwhile, as SQLite's table rebuilds (batch migrations) need, and are
    checked before the commit.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            conn.commit()
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
                conn.commit()
            return
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            _begin_immediate(conn)
            try:
                yield conn
                if broken := conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall():
                    raise ConfigError(f"the upgrade left rows that break foreign keys: {broken}")
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def _begin_immediate(conn: Connection) -> None:
    """Take SQLite's write lock, waiting as long as another node's upgrade may take: each
    try waits busy_timeout, too short for an upgrade that copies a large table."""
    deadline = time.monotonic() + SCHEMA_LOCK_WAIT_SECONDS
    while True:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            conn.rollback()
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            log.info("waiting for the database's write lock to upgrade the schema")


def insert_ignoring_conflicts(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                              keys: Sequence[str]) -> int:
    """INSERT … ON CONFLICT (keys) DO NOTHING on SQLite and PostgreSQL; returns rows added.

    The idempotency of the ledger, the outbox and the space rests on this one statement.
    """
    if not rows:
        return 0
    statement = _insert_ignoring(conn.dialect.name, table, tuple(keys))
    return int(conn.execute(statement, list(rows)).rowcount)


@functools.lru_cache(maxsize=256)
def _insert_ignoring(dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    """Built once per table: constructing the statement costs more than running it."""
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(keys))
    if dialect == "postgresql":
        return pg_insert(table).on_conflict_do_nothing(index_elements=list(keys))
    return insert(table)  # pragma: no cover - only SQLite and PostgreSQL are supported
