"""Plain SQL on the DB-API connection, for the paths that run once per message.

Building and compiling a SQLAlchemy statement, generating its cache key and running the
type processors costs ten times what SQLite needs to run it on an indexed key
(docs/performance.md); the gateway's record and the shared space's ingest therefore run
fixed SQL text with bind parameters straight on the driver. The tables are still defined
once, in core/tables*.py; the statements here only name their columns.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection


@functools.lru_cache(maxsize=512)
def driver_sql(dialect: str, text: str) -> str:
    """`text` with `:name` parameters in the driver's style (SQLite: as is; PostgreSQL's
    drivers: `%(name)s`, with literal percent signs doubled)."""
    if dialect == "sqlite":
        return text
    return re.sub(r":(\w+)", r"%(\1)s", text.replace("%", "%%"))


@functools.lru_cache(maxsize=256)
def sqlite_time(moment: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite (UTC, no zone), so both read it alike.
    Cached: one message's rows carry the same few moments."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


def bind(dialect: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's values as the driver takes them (SQLite: datetimes as SQLAlchemy's text)."""
    if dialect != "sqlite":
        return dict(row)
    return {k: sqlite_time(v) if isinstance(v, datetime) else v for k, v in row.items()}


def bind_times(dialect: str, row: dict[str, Any], times: Iterable[str]) -> dict[str, Any]:
    """`bind` for a fresh row whose datetime columns are known: only those are converted,
    in place (the per-value type check of `bind` was a twentieth of the gateway's time)."""
    if dialect == "sqlite":
        for name in times:
            value = row.get(name)
            if value is not None:
                row[name] = sqlite_time(value)
    return row


def insert_sql(table: str, columns: Iterable[str], conflict: str | None = None) -> str:
    """INSERT of the named columns (`:column` parameters), ignoring conflicts on `conflict`."""
    names = list(columns)
    quoted = ", ".join(f'"{c}"' for c in names)
    values = ", ".join(f":{c}" for c in names)
    tail = f" ON CONFLICT ({conflict}) DO NOTHING" if conflict else ""
    return f"INSERT INTO {table} ({quoted}) VALUES ({values}){tail}"


class Raw:
    """Statements run on a SQLAlchemy connection's own DB-API connection, inside the
    transaction the connection has open (the caller commits or rolls back as usual)."""

    def __init__(self, conn: Connection) -> None:
        self.dialect = conn.dialect.name
        self._cursor = conn.connection.cursor()

    def execute(self, text: str, params: Mapping[str, Any] | None = None) -> Any:
        self._cursor.execute(driver_sql(self.dialect, text), bind(self.dialect, params or {}))
        return self._cursor

    def executemany(self, text: str, rows: Iterable[Mapping[str, Any]]) -> int:
        bound = [bind(self.dialect, row) for row in rows]
        if not bound:
            return 0
        self._cursor.executemany(driver_sql(self.dialect, text), bound)
        return int(self._cursor.rowcount)

    def scalar(self, text: str, params: Mapping[str, Any] | None = None) -> Any:
        row = self.execute(text, params).fetchone()
        return None if row is None else row[0]

    def all(self, text: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        return list(self.execute(text, params).fetchall())
