"""The schema's migrations on SQLite and on a real PostgreSQL (tests/pg.py): a database built
by the revisions is the one the models describe, revisions go down and up again, a database
made by `create_all` before there were migrations is taken over, several nodes may upgrade
at once, and `sluice db check` says when the models and the migrations part ways."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

from sluice.cli import main
from sluice.core import migrations, tables_space
from sluice.core.db import init_schema, make_engine, schema_lock
from sluice.core.errors import ConfigError
from sluice.core.migrations import legacy
from sluice.core.settings import load_settings
from sluice.space.search import search
from tests.pg import postgres, postgres_url  # noqa: F401  (fixtures)
from tests.space.helpers import ANN, message, post_id_of, publish

DIALECTS = ["sqlite", "postgresql"]


@pytest.fixture()
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of the dialect in request.param."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'sluice.db'}"


@pytest.fixture()
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(load_settings(None, database_url=database_url))
    yield engine
    engine.dispose()


def revision(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return migrations.current_revisions(conn)


def differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return migrations.differences(conn)


def create_all_as_before(engine: Engine) -> None:
    """What init_schema did before there were migrations: the models of that time, which
    also had the two indexes revision 0002 dropped and not the columns 0003 added."""
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        tables_space.create_search_table(conn)
        conn.execute(text("CREATE INDEX ix_ledger_fingerprint ON ledger (fingerprint)"))
        conn.execute(text("CREATE INDEX ix_message_thread_subject ON message (thread_subject)"))
        conn.execute(text("ALTER TABLE message DROP COLUMN readers"))
        conn.execute(text("ALTER TABLE message DROP COLUMN automated"))


def publish_and_find(engine: Engine, subject: str) -> None:
    post = post_id_of(publish(engine, message(subject, text=f"About the {subject} plan.")))
    assert [hit.post_id for hit in search(engine, ANN, subject)] == [post]


@pytest.mark.parametrize("database_url", DIALECTS, indirect=True)
def test_upgrade_from_empty_builds_what_the_models_describe(engine: Engine) -> None:
    init_schema(engine)
    assert revision(engine) == (migrations.head(),)
    # Fails when a model gains a column, index or table without a revision that adds it.
    assert differences(engine) == []
    init_schema(engine)  # at head already: nothing to do
    publish_and_find(engine, "lighthouse")
    if engine.dialect.name == "postgresql":
        indexes = {i["name"] for i in inspect(engine).get_indexes(tables_space.SEARCH_TABLE)}
        assert "ix_space_search_document" in indexes


@pytest.mark.parametrize("database_url", DIALECTS, indirect=True)
def test_downgrade_to_base_and_up_again(engine: Engine) -> None:
    init_schema(engine)
    with schema_lock(engine) as conn:
        migrations.downgrade(conn, "base")
    assert set(inspect(engine).get_table_names()) == {migrations.VERSION_TABLE}
    assert revision(engine) == ()
    init_schema(engine)
    assert revision(engine) == (migrations.head(),)
    assert differences(engine) == []


@pytest.mark.parametrize("database_url", DIALECTS, indirect=True)
def test_a_create_all_database_is_stamped_and_keeps_its_data(engine: Engine) -> None:
    create_all_as_before(engine)
    publish_and_find(engine, "harbour")
    with engine.connect() as conn:
        assert legacy.is_legacy(conn)
        assert legacy.differences(conn) == []
    init_schema(engine)
    assert revision(engine) == (migrations.head(),)
    assert differences(engine) == []
    assert [hit.subject for hit in search(engine, ANN, "harbour")] == ["harbour"]
    publish_and_find(engine, "lantern")


@pytest.mark.parametrize("database_url", DIALECTS, indirect=True)
def test_a_create_all_database_that_differs_is_refused(engine: Engine) -> None:
    create_all_as_before(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE app_user ADD COLUMN nickname VARCHAR(64)"))
        conn.execute(text("DROP TABLE watch_state"))
    with pytest.raises(ConfigError) as refused:
        init_schema(engine)
    reason = str(refused.value)
    assert "app_user: columns not in revision 0001 [('nickname', True)]" in reason
    assert "table watch_state is missing" in reason
    assert "sluice db upgrade" in reason
    assert revision(engine) == ()  # nothing was stamped


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigError, match="revision 9999, which this Sluice does not know"):
        init_schema(engine)


def test_sqlite_foreign_keys_are_on_again_after_an_upgrade(tmp_path: Path) -> None:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    for _ in range(3):  # every pooled connection
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


#: One node starting: open the database, say so, wait for the word, bring the schema to head.
NODE = """
import sys
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
engine = make_engine(load_settings(None, database_url=sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
init_schema(engine)
"""


@pytest.mark.parametrize("database_url", DIALECTS, indirect=True)
def test_nodes_starting_at_once_all_succeed(database_url: str, engine: Engine) -> None:
    nodes = [subprocess.Popen([sys.executable, "-c", NODE, database_url], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for _ in range(2)]
    for node in nodes:
        assert node.stdout is not None and node.stdout.readline() == "ready\n"
    for node in nodes:  # both are connected: start them as close together as possible
        assert node.stdin is not None
        node.stdin.write("go\n")
        node.stdin.flush()
    assert [node.wait(timeout=120) for node in nodes] == [0, 0]
    for node in nodes:
        assert node.stdin is not None and node.stdout is not None
        node.stdin.close()
        node.stdout.close()
    assert revision(engine) == (migrations.head(),)
    assert differences(engine) == []


def test_sluice_db_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--data-dir", str(tmp_path)]
    assert main(["db", "current", *where]) == 0
    assert capsys.readouterr().out == "none: empty database\n"
    assert main(["db", "check", *where]) == 1
    assert "run `sluice db upgrade`" in capsys.readouterr().err

    assert main(["db", "upgrade", *where]) == 0
    assert capsys.readouterr().out == f"sluice db: revision none -> {migrations.head()} (head)\n"
    assert main(["db", "current", *where]) == 0
    assert capsys.readouterr().out == f"{migrations.head()} (head)\n"
    assert main(["db", "check", *where]) == 0
    capsys.readouterr()

    # A column the models do not have: what a model without its revision looks like too.
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger ADD COLUMN note VARCHAR(64)"))
    engine.dispose()
    assert main(["db", "check", *where]) == 1
    assert "  remove_column ledger.note\n" in capsys.readouterr().err

    assert main(["db", "downgrade", "base", *where]) == 0
    assert capsys.readouterr().out == f"sluice db: revision {migrations.head()} (head) -> none\n"


def test_sluice_db_upgrade_stamps_a_create_all_database_on_postgres(
        postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    engine = make_engine(load_settings(None, database_url=postgres_url))
    create_all_as_before(engine)
    where = ["--database-url", postgres_url]
    assert main(["db", "current", *where]) == 0
    assert capsys.readouterr().out.startswith("none: made before migrations")
    assert main(["db", "upgrade", *where]) == 0
    assert main(["db", "check", *where]) == 0
    assert revision(engine) == (migrations.head(),)
    engine.dispose()
