"""Database engine with the durability Sluice promises: a commit survives a crash.

SQLite runs in WAL mode with synchronous=FULL (checked after connecting); PostgreSQL must
not run with synchronous_commit=off. Settings that weaken this refuse to start.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, event, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import SQLModel, create_engine

from sluice.core import (  # noqa: F401  (registers the tables)
    tables,
    tables_analysis,
    tables_board,
    tables_people,
    tables_router,
    tables_space,
    tables_watch,
)
from sluice.core.errors import ConfigError
from sluice.core.settings import Settings

#: How long a SQLite writer waits for the lock before the caller sees a temporary error.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def make_engine(settings: Settings) -> Engine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        return _sqlite_engine(url, settings.sqlite_synchronous)
    engine = create_engine(url, pool_pre_ping=True)
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
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        tables_space.create_search_table(conn)


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
