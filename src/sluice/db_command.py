"""`sluice db`: the schema's revisions on the command line — upgrade once before new nodes
roll out, see where a database stands, check that the models and the migrations agree, and
(for developers) write the next revision. docs/migrations.md tells the whole story."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection, Engine

# Alembic and the database layer are imported when an action runs: `sluice --help` stays fast.


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "db", help="database schema and retention: upgrade, current, check, prune",
        description="The database schema's revisions (docs/migrations.md). Every node also "
        "upgrades on start, under a lock; run `sluice db upgrade` once before a rollout.")
    actions = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = _action(actions, "upgrade", run_upgrade, "bring the database to a revision "
                      "(default: the newest); a database made before migrations is stamped")
    upgrade.add_argument("revision", nargs="?", default="head", help="default: head")
    _action(actions, "current", run_current, "print the database's revision")
    _action(actions, "check", run_check, "exit 1 unless the database is at the newest revision "
            "and its schema matches the models")
    downgrade = _action(actions, "downgrade", run_downgrade,
                        "go back to an older revision (base: drop every table)")
    downgrade.add_argument("revision", help="a revision number, -1, or base")
    prune = _action(actions, "prune", run_prune, "delete history older than a number of days: "
                    "message facts and outcomes, finished outbox jobs, sent digest items, "
                    "old ledger rows, blobs nothing refers to (never the space's content)")
    prune.add_argument("--older-than", type=float, metavar="DAYS",
                       help="default: the retention_days setting (at least 1)")
    prune.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    prune.add_argument("--batch", type=int, default=2000,
                       help="rows per transaction (default 2000)")
    revision = actions.add_parser(
        "revision", help="developers: write the next revision from the models",
        description="Compare the models with a scratch SQLite database at the newest revision "
        "and write what differs as the next numbered revision file, to review and complete "
        "(PostgreSQL-only parts, data) by hand.")
    revision.add_argument("-m", "--message", required=True, help="what the revision changes")
    revision.add_argument("--empty", action="store_true",
                          help="do not compare: an empty revision (data, SQL of one dialect)")
    revision.set_defaults(func=run_revision)


def _action(actions: Any, name: str, func: Any, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
    parser.add_argument("--config", type=Path, help="TOML config file (or SLUICE_CONFIG)")
    parser.add_argument("--data-dir", type=Path, help="state folder (default ./data)")
    parser.add_argument("--database-url",
                        help="SQLAlchemy URL (default SQLite in the data dir)")
    parser.set_defaults(func=func)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, data_dir=args.data_dir, database_url=args.database_url)


@contextmanager
def _database(args: argparse.Namespace, settings: Settings | None = None) -> Iterator[Engine]:
    """The database the options, the config file and SLUICE_* name; closed afterwards."""
    from sluice.core.db import make_engine

    engine = make_engine(settings or _settings(args))
    try:
        yield engine
    finally:
        engine.dispose()


def _describe(revisions: tuple[str, ...]) -> str:
    from sluice.core import migrations

    if not revisions:
        return "none"
    return ", ".join(f"{r} (head)" if r == migrations.head() else r for r in revisions)


def run_upgrade(args: argparse.Namespace) -> int:
    from sluice.core.db import upgrade_locked

    return _move(args, upgrade_locked)


def run_downgrade(args: argparse.Namespace) -> int:
    from sluice.core import migrations

    return _move(args, migrations.downgrade)


def _move(args: argparse.Namespace, step: Callable[[Connection, str], None]) -> int:
    """Up or down to args.revision under the schema lock, saying from where to where."""
    from sluice.core import migrations
    from sluice.core.db import schema_lock

    with _database(args) as engine, schema_lock(engine) as conn:
        before = migrations.current_revisions(conn)
        step(conn, args.revision)
        after = migrations.current_revisions(conn)
    print(f"sluice db: revision {_describe(before)} -> {_describe(after)}")
    return 0


def run_current(args: argparse.Namespace) -> int:
    from sluice.core import migrations
    from sluice.core.migrations import legacy

    with _database(args) as engine, engine.connect() as conn:
        current = migrations.current_revisions(conn)
        made_by_create_all = not current and legacy.is_legacy(conn)
    if made_by_create_all:
        print("none: made before migrations (`sluice db upgrade` stamps it when it matches "
              f"revision {legacy.FIRST})")
    else:
        print(_describe(current) if current else "none: empty database")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from sluice.core.errors import ConfigError
    from sluice.core.retention import prune

    settings = _settings(args)
    days = args.older_than if args.older_than is not None else settings.retention_days
    if not days:
        print("sluice db prune: give --older-than DAYS or set retention_days", file=sys.stderr)
        return 2
    from sluice.core import migrations

    with _database(args, settings) as engine:
        with engine.connect() as conn:
            current = migrations.current_revisions(conn)
        if current != (migrations.head(),):
            print(f"sluice db prune: the database is at revision {_describe(current)}, not "
                  f"{migrations.head()}: run `sluice db upgrade` first", file=sys.stderr)
            return 1
        try:
            counts = prune(engine, timedelta(days=days),
                           ledger_older_than=timedelta(days=settings.ledger_retention_days),
                           batch=args.batch, dry_run=args.dry_run)
        except ConfigError as error:
            print(f"sluice db prune: {error}", file=sys.stderr)
            return 2
    verb = "would delete" if args.dry_run else "deleted"
    print(f"sluice db prune: {verb} (older than {days:g} days):")
    for line in counts.lines():
        print(f"  {line}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from sluice.core import migrations

    with _database(args) as engine, engine.connect() as conn:
        current = migrations.current_revisions(conn)
        differences = migrations.differences(conn) if current == (migrations.head(),) else []
    if current != (migrations.head(),):
        print(f"sluice db check: the database is at revision {_describe(current)}, "
              f"the newest is {migrations.head()}: run `sluice db upgrade`", file=sys.stderr)
        return 1
    if differences:
        print("sluice db check: the models and the migrations differ (write a revision: "
              "`sluice db revision -m WHAT`, docs/migrations.md):", file=sys.stderr)
        for difference in differences:
            print(f"  {migrations.describe(difference)}", file=sys.stderr)
        return 1
    print(f"sluice db check: revision {migrations.head()}, schema matches the models")
    return 0


def run_revision(args: argparse.Namespace) -> int:
    from alembic import command
    from sqlalchemy import create_engine

    from sluice.core import migrations

    number = f"{len(migrations.revision_numbers()) + 1:04d}"
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn)
            written = command.revision(migrations.alembic_config(conn), message=args.message,
                                       autogenerate=not args.empty, rev_id=number)
    finally:
        engine.dispose()
    scripts = written if isinstance(written, list) else [written]
    for script in scripts:
        if script is not None:
            print(f"sluice db: wrote {script.path}: review it, then test it "
                  "(docs/migrations.md)")
    return 0
