"""Databases made before there were migrations: `create_all` left Sluice's tables but no
alembic_version. One whose tables are those of the first revision is stamped with it and
then upgraded; any other would be migrated from a wrong starting point, so it is refused.

The first revision's tables are learnt by running it on an in-memory SQLite database, so
the comparison keeps meaning "the schema of revision 0001" after the models have moved on.
It compares what is the same on both dialects: tables, columns and whether they take NULL,
indexes, unique constraints and foreign keys (by name where the models name them, else by
columns); column types are not compared.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import Connection, create_engine, inspect

from sluice.core.migrations import VERSION_TABLE, include_name, target_metadata, upgrade
from sluice.core.tables_space import SEARCH_TABLE

#: The revision that matches the schema of every Sluice made before migrations.
FIRST = "0001"


@dataclass(frozen=True)
class TableOutline:
    columns: frozenset[tuple[str, bool]]  # name, nullable
    indexes: frozenset[tuple[str, tuple[str, ...], bool]]  # name, columns, unique
    uniques: frozenset[tuple[str, ...]]
    foreign_keys: frozenset[tuple[tuple[str, ...], str, tuple[str, ...]]]


def is_legacy(conn: Connection) -> bool:
    """Sluice's tables without Alembic's bookkeeping: made by `create_all`."""
    names = set(inspect(conn).get_table_names())
    return VERSION_TABLE not in names and bool(names & set(target_metadata().tables))


def differences(conn: Connection) -> list[str]:
    """How this database differs from revision FIRST, one line each; [] when it matches."""
    found = outline(conn)
    problems: list[str] = []
    for table, expected in first_revision_outline().items():
        if table not in found:
            problems.append(f"table {table} is missing")
            continue
        for part in ("columns", "indexes", "uniques", "foreign_keys"):
            want, have = getattr(expected, part), getattr(found[table], part)
            if missing := sorted(want - have, key=str):
                problems.append(f"{table}: {part} missing {missing}")
            if unexpected := sorted(have - want, key=str):
                problems.append(f"{table}: {part} not in revision {FIRST} {unexpected}")
    if SEARCH_TABLE not in inspect(conn).get_table_names():
        problems.append(f"table {SEARCH_TABLE} (the search index) is missing")
    return problems


@functools.cache
def first_revision_outline() -> dict[str, TableOutline]:
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            upgrade(conn, FIRST)
            return outline(conn)
    finally:
        engine.dispose()


def outline(conn: Connection) -> dict[str, TableOutline]:
    """The dialect-independent shape of every table a revision made (not the search index)."""
    inspector = inspect(conn)
    result = {}
    for table in inspector.get_table_names():
        if table == VERSION_TABLE or not include_name(table, "table", {}):
            continue
        result[table] = TableOutline(
            columns=frozenset((c["name"], bool(c["nullable"]))
                              for c in inspector.get_columns(table)),
            indexes=frozenset((str(i["name"]), tuple(str(c) for c in i["column_names"]),
                               bool(i["unique"]))
                              for i in inspector.get_indexes(table)
                              if "duplicates_constraint" not in i),
            uniques=frozenset(tuple(u["column_names"])
                              for u in inspector.get_unique_constraints(table)),
            foreign_keys=frozenset((tuple(f["constrained_columns"]), f["referred_table"],
                                    tuple(f["referred_columns"]))
                                   for f in inspector.get_foreign_keys(table)),
        )
    return result
