"""Cost of making the schema with the migrations instead of `create_all`: what every test
fixture and every node start pays.

Run on demand (this is not a test):

    .venv/bin/python benchmarks/migrations.py                  # SQLite, 15 rounds
    .venv/bin/python benchmarks/migrations.py --postgres       # and a PostgreSQL of its own

Three ways are timed in turns on the same machine in the same minute, each on a fresh
database per round (median over the rounds):

- ``create_all``   the baseline: what init_schema did before migrations (SQLModel's
                   create_all, then the search index);
- ``empty->head``  init_schema on an empty database: every revision under the schema lock;
- ``at head``      init_schema on a database already at the newest revision (every node
                   start after the first): one look at alembic_version.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import SQLModel

from sluice.core import tables_space
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings


def create_all(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        tables_space.create_search_table(conn)


WAYS: dict[str, Callable[[Engine], None]] = {
    "create_all": create_all, "empty->head": init_schema, "at head": init_schema}


def measure(new_database: Callable[[], str], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in WAYS}
    for _ in range(rounds):
        for name, way in WAYS.items():  # in turns: load on the machine hits all alike
            engine = make_engine(load_settings(None, database_url=new_database()))
            if name == "at head":  # timed is the second call
                init_schema(engine)
            started = time.perf_counter()
            way(engine)
            times[name].append(time.perf_counter() - started)
            engine.dispose()
    return times


def report(dialect: str, times: dict[str, list[float]]) -> None:
    baseline = statistics.median(times["create_all"])
    print(f"\n{dialect}: median of {len(times['create_all'])} rounds, fresh database each")
    print("| way         | median ms | vs create_all |")
    print("|-------------|----------:|--------------:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name:<11} | {median * 1000:9.1f} | {median / baseline:13.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--postgres", action="store_true",
                        help="also on a PostgreSQL started for the run (tests/pg.py)")
    args = parser.parse_args()
    print(f"machine     {platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}")
    print(f"load avg    {' '.join(f'{x:.2f}' for x in os.getloadavg())} before the run")
    with tempfile.TemporaryDirectory() as folder:
        count = iter(range(10**6))
        report("SQLite (WAL, synchronous=FULL)", measure(
            lambda: f"sqlite:///{Path(folder) / f'{next(count)}.db'}", args.rounds))
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.pg import PostgresServer

        server = PostgresServer()
        try:
            report("PostgreSQL", measure(server.new_database, args.rounds))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
