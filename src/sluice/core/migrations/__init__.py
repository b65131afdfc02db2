"""The schema's history as Alembic revisions, shipped inside the package and configured in
code: every command runs on a connection Sluice opened itself, so there is no alembic.ini and
no second place where the database URL is written down.

The search index (`space_search`: an FTS5 table on SQLite, a table with a tsvector and a GIN
index on PostgreSQL) is not a SQLModel table; the revisions create it with plain SQL per
dialect, and the comparison with the models leaves it (and FTS5's shadow tables) out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, inspect
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from sluice.core import (  # noqa: F401  (registers the tables on SQLModel.metadata)
    tables,
    tables_analysis,
    tables_board,
    tables_people,
    tables_router,
    tables_space,
    tables_watch,
)

FOLDER = Path(__file__).parent
#: Alembic's own bookkeeping table (one row: the revision the database is at).
VERSION_TABLE = "alembic_version"


def target_metadata() -> MetaData:
    return SQLModel.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without a file; env.py takes the connection from here."""
    config = Config()
    config.set_main_option("script_location", str(FOLDER))
    # Revisions are numbered 0001, 0002, …: their files sort in the order they apply.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


@functools.cache
def script_directory() -> ScriptDirectory:
    """Read once per process: parsing the revision files costs more than a check at head."""
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    heads = script_directory().get_heads()
    if len(heads) != 1:  # two branches of revisions were merged without a merge revision
        raise RuntimeError(f"the migrations have {len(heads)} heads: {heads}")
    return heads[0]


def current_revisions(conn: Connection) -> tuple[str, ...]:
    """The revisions recorded in the database; () when it was never stamped."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return ()
    return tuple(MigrationContext.configure(conn).get_current_heads())


def upgrade(conn: Connection, target: str = "head") -> None:
    """Runs inside the caller's transaction when there is one (the caller holds the lock)."""
    command.upgrade(alembic_config(conn), target)


def downgrade(conn: Connection, target: str) -> None:
    command.downgrade(alembic_config(conn), target)


def stamp(conn: Connection, target: str) -> None:
    command.stamp(alembic_config(conn), target)


def differences(conn: Connection) -> list[Any]:
    """What autogenerate would write for this database: [] when it matches the models."""
    context = MigrationContext.configure(conn, opts=comparison_options())
    return list(compare_metadata(context, target_metadata()))


def describe(difference: Any) -> str:
    """One of `differences` as a line: what a revision would have to do (`add_column
    ledger.note`: the models have the column, the database does not)."""
    if isinstance(difference, list):  # the changes to one column come as a list
        return "; ".join(describe(item) for item in difference)
    kind = difference[0]
    if kind in ("add_table", "remove_table"):
        return f"{kind} {difference[1].name}"
    if kind in ("add_column", "remove_column"):
        return f"{kind} {difference[2]}.{difference[3].name}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint",
                "add_fk", "remove_fk"):
        item = difference[1]
        columns = ", ".join(column.name for column in item.columns)
        return f"{kind} {item.name or '(unnamed)'} on {item.table.name} ({columns})"
    if kind.startswith("modify_"):
        _, _, table, column, _, old, new = difference
        return f"{kind} {table}.{column}: {old} -> {new}"
    return repr(difference)


def comparison_options() -> dict[str, Any]:
    """The same options for env.py (autogenerate) and for `differences` (check)."""
    return {
        "target_metadata": target_metadata(),
        "compare_type": True,
        "include_name": include_name,
        "render_item": render_item,
        # SQLite cannot ALTER most things: later revisions copy and rename tables instead.
        "render_as_batch": True,
    }


def include_name(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
    """The search table and FTS5's shadow tables (space_search_data, …) are not models."""
    if type_ == "table" and name is not None:
        return not name.startswith(tables_space.SEARCH_TABLE)
    return True


def render_item(type_: str, obj: Any, _context: AutogenContext) -> str | bool:
    """SQLModel's column types written as SQLAlchemy's: a revision is frozen, it must not
    change meaning when SQLModel changes how it maps a Python type."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def revision_numbers() -> Sequence[str]:
    return [script.revision for script in script_directory().walk_revisions()]
