"""Retention (`sluice db prune`): old history goes, the shared space's content, mail in
flight and every blob something still points at stay — on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from sluice.cli import main
from sluice.core.db import init_schema, make_engine
from sluice.core.errors import ConfigError
from sluice.core.retention import PruneCounts, prune
from sluice.core.settings import load_settings
from sluice.core.tables import LedgerEntry, MessageRecord, RecipientOutcome, utcnow
from sluice.core.tables_board import Document, DocumentVersion
from sluice.core.tables_router import DONE, FALLBACK, PENDING, Blob, DigestItem, OutboxJob
from sluice.core.tables_space import PostAttachment, SpacePost
from tests.pg import postgres, postgres_url  # noqa: F401  (fixtures)

NOW = utcnow()
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=2)


def sqlite_engine(tmp_path: Path) -> Engine:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = sqlite_engine(tmp_path)
    else:
        made = make_engine(load_settings(None, database_url=request.getfixturevalue(
            "postgres_url")))
        init_schema(made)
    yield made
    made.dispose()


def blob(name: str, at: object) -> Blob:
    return Blob(sha256=name.ljust(64, "-"), size=len(name) * 100, data=name.encode() * 100,
                created_at=at)


def sha(name: str) -> str:
    return name.ljust(64, "-")


def job(name: str, state: str, at: object) -> OutboxJob:
    return OutboxJob(key=f"{name}:space", destination="space", fingerprint=name, post_json="{}",
                     raw_sha256=sha(name), recipients="ann@example.com", state=state,
                     deadline_at=at, created_at=at, done_at=None if state == PENDING else at)


def populate(engine: Engine, messages: int = 3) -> None:
    """Old and recent rows of every kind retention looks at."""
    with Session(engine) as session:
        for i in range(messages):
            for when, tag in ((OLD, "old"), (RECENT, "new")):
                record = MessageRecord(fingerprint=f"{tag}{i}", received_at=when)
                session.add(record)
                session.flush()
                assert record.id is not None
                session.add_all([RecipientOutcome(message_pk=record.id, recipient=f"r{n}@x",
                                                  status="delivered", at=when)
                                 for n in range(2)])
        session.add_all([
            # a finished job whose blob nothing else needs: both go
            blob("webhookdone", OLD), job("webhookdone", DONE, OLD),
            # a job that fell back long ago: goes
            blob("fellback", OLD), job("fellback", FALLBACK, OLD),
            # an old job still pending (a destination down): it and its blob stay
            blob("pending", OLD), job("pending", PENDING, OLD),
            # a finished job whose raw message is also a space post's: the job goes, the blob stays
            blob("posted", OLD), job("posted", DONE, OLD),
            # a recent finished job stays
            blob("recentjob", RECENT), job("recentjob", DONE, RECENT),
            # an old blob nothing points at goes, a recent one stays (its reference may be
            # on its way in the same transaction)
            blob("orphanold", OLD), blob("orphannew", RECENT),
            # files of the space and the library stay whatever their age
            blob("attachment", OLD), blob("libraryfile", OLD),
            # digest items: sent long ago go; unsent or recent stay
            DigestItem(user="ann@example.com", fingerprint="d1", created_at=OLD, sent_at=OLD),
            DigestItem(user="ann@example.com", fingerprint="d2", created_at=OLD, sent_at=None),
            DigestItem(user="ann@example.com", fingerprint="d3", created_at=RECENT,
                       sent_at=RECENT),
            # ledger rows past ledger retention go
            LedgerEntry(fingerprint="l1", recipient="a@x", at=NOW - timedelta(days=8)),
            LedgerEntry(fingerprint="l2", recipient="a@x", at=NOW - timedelta(days=1)),
        ])
        post = SpacePost(channel="news", fingerprint="posted", raw_sha256=sha("posted"),
                         posted_at=OLD, last_activity_at=OLD)
        session.add(post)
        session.flush()
        assert post.id is not None
        session.add(PostAttachment(post_id=post.id, sha256=sha("attachment"), size=1))
        document = Document(channel="news", key="price-list", created_at=OLD)
        session.add(document)
        session.flush()
        assert document.id is not None
        session.add(DocumentVersion(document_id=document.id, version=1, post_id=post.id,
                                    sha256=sha("libraryfile"), sent_at=OLD))
        session.commit()


def names(engine: Engine, column: object) -> set[str]:
    with engine.connect() as conn:
        return {str(v).rstrip("-") for v in conn.execute(select(column)).scalars()}


def count(engine: Engine, table: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def test_prune_deletes_old_history_and_keeps_content_and_mail_in_flight(engine: Engine) -> None:
    populate(engine)
    expected = PruneCounts(message=3, recipient_outcome=6, outbox_job=3, digest_item=1,
                           ledger=1, blob=3, blob_bytes=sum(
                               len(n) * 100 for n in ("webhookdone", "fellback", "orphanold")))
    older_than, ledger = timedelta(days=30), timedelta(days=7)
    dry = prune(engine, older_than, ledger_older_than=ledger, dry_run=True)
    assert dry == expected
    assert count(engine, MessageRecord) == 6  # a dry run deletes nothing

    # batch=2 makes every table take several transactions
    assert prune(engine, older_than, ledger_older_than=ledger, batch=2) == expected

    assert names(engine, col(MessageRecord.fingerprint)) == {"new0", "new1", "new2"}
    assert count(engine, RecipientOutcome) == 6
    assert names(engine, col(OutboxJob.fingerprint)) == {"pending", "recentjob"}
    assert names(engine, col(Blob.sha256)) == {
        "pending", "posted", "recentjob", "orphannew", "attachment", "libraryfile"}
    assert names(engine, col(DigestItem.fingerprint)) == {"d2", "d3"}
    assert names(engine, col(LedgerEntry.fingerprint)) == {"l2"}
    assert count(engine, SpacePost) == 1 and count(engine, DocumentVersion) == 1

    # a second run finds nothing more
    assert prune(engine, older_than, ledger_older_than=ledger) == PruneCounts()


def test_retention_shorter_than_a_day_is_refused(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path)
    populate(engine, messages=1)
    with pytest.raises(ConfigError, match="shorter than the minimum"):
        prune(engine, timedelta(hours=12))
    assert count(engine, MessageRecord) == 2


def test_db_prune_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = sqlite_engine(tmp_path)
    populate(engine, messages=2)
    engine.dispose()
    data = ["--data-dir", str(tmp_path)]
    assert main(["db", "prune", *data]) == 2  # no --older-than and no retention_days set
    assert "retention_days" in capsys.readouterr().err
    assert main(["db", "prune", *data, "--older-than", "0.5"]) == 2
    assert "minimum" in capsys.readouterr().err

    assert main(["db", "prune", *data, "--older-than", "30", "--dry-run"]) == 0
    assert "would delete" in (out := capsys.readouterr().out) and "message: 2" in out
    assert main(["db", "prune", *data, "--older-than", "30"]) == 0
    assert "deleted" in (out := capsys.readouterr().out) and "message: 2" in out
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    assert names(engine, col(MessageRecord.fingerprint)) == {"new0", "new1"}
    engine.dispose()


def test_db_prune_refuses_a_database_not_at_the_newest_revision(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "prune", "--data-dir", str(tmp_path), "--older-than", "30"]) == 1
    assert "sluice db upgrade" in capsys.readouterr().err


def test_every_column_holding_a_blob_hash_is_a_known_reference() -> None:
    """A new table that stores a blob's sha256 must join retention.BLOB_REFERENCES."""
    from sqlmodel import SQLModel

    import sluice.core.tables_analysis
    import sluice.core.tables_people
    import sluice.core.tables_watch  # noqa: F401  (every table in the metadata)
    from sluice.core.retention import BLOB_REFERENCES

    not_blobs = {"api_token.token_sha256", "web_session.id_sha256", "blob.sha256"}
    found = {f"{table.name}.{column.name}" for table in SQLModel.metadata.tables.values()
             for column in table.columns if column.name.endswith("sha256")}
    known = {f"{ref.table.name}.{ref.name}" for ref in (col(r) for r in BLOB_REFERENCES)}
    assert found - not_blobs == known
