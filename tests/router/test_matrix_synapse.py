"""Matrix against a real homeserver (Synapse on loopback, tests/synapse.py): the post that
apprise sends arrives in the room as a member reads it, through the outbox exactly once, and
a refused login is a publish error the outbox retries."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
from sluice.core.tables_router import DONE, Blob, OutboxJob
from sluice.router.blobs import BlobStore, blob_row
from sluice.router.destinations import AppriseDestination, PublishError
from sluice.router.outbox import OutboxEntry, OutboxWorker
from tests.router.test_chat import (
    SENDER,
    SENDER_NAME,
    assert_carries_the_post,
    make_post,
    publish,
)
from tests.synapse import SynapseServer, synapse  # noqa: F401  (fixture)

BOT, BOT_PASSWORD = "sluice", "bot-" + uuid.uuid4().hex[:8]
READER, READER_PASSWORD = "ann", "ann-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def room(synapse: SynapseServer) -> tuple[str, str]:  # noqa: F811
    """A public room with an alias, made by a reader; returns (room id, reader's token)."""
    synapse.register(BOT, BOT_PASSWORD)
    synapse.register(READER, READER_PASSWORD)
    token = synapse.login(READER, READER_PASSWORD)
    made = synapse.call("POST", "/createRoom", {
        "room_alias_name": "offering-updates", "preset": "public_chat",
        "name": "Offering updates"}, token=token)
    return str(made["room_id"]), token


def destination(synapse: SynapseServer, password: str = BOT_PASSWORD) -> AppriseDestination:  # noqa: F811
    return AppriseDestination(
        "matrix", f"matrix://{BOT}:{password}@127.0.0.1:{synapse.port}/%23offering-updates")


def test_a_post_arrives_in_the_room_as_a_member_reads_it(
        synapse: SynapseServer, room: tuple[str, str]) -> None:  # noqa: F811
    room_id, token = room
    before = len(synapse.messages(room_id, token))
    publish(destination(synapse))
    events = synapse.messages(room_id, token)[before:]
    assert len(events) == 1
    event = events[0]
    assert event["sender"] == f"@{BOT}:localhost"  # apprise logged in and joined by alias
    content = event["content"]
    assert content["msgtype"] == "m.text"
    assert_carries_the_post(content["body"])
    assert content["format"] == "org.matrix.custom.html"
    html = content["formatted_body"]
    assert f"<strong>{SENDER_NAME} ({SENDER})</strong>" in html
    assert_carries_the_post(html.replace("<em>", "*").replace("</em>", "*"))


def test_refused_login_is_a_publish_error(
        synapse: SynapseServer, room: tuple[str, str]) -> None:  # noqa: F811
    room_id, token = room
    before = len(synapse.messages(room_id, token))
    with pytest.raises(PublishError, match="matrix"):
        publish(destination(synapse, password="wrong"))
    assert len(synapse.messages(room_id, token)) == before


def test_the_outbox_publishes_into_the_room_once(
        synapse: SynapseServer, room: tuple[str, str], tmp_path: Path) -> None:  # noqa: F811
    room_id, token = room
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    raw = b"From: pat@partner.example\r\nSubject: Q3\r\n\r\nprices\r\n"
    blob = blob_row(raw)
    entry = OutboxEntry(make_post("matrix"), blob["sha256"], ("alice@example.com",), SENDER,
                        datetime.now(UTC) + timedelta(hours=1), blob)
    with Session(engine) as session:
        session.execute(Blob.__table__.insert().values(**blob))  # type: ignore[attr-defined]
        session.execute(OutboxJob.__table__.insert().values(**entry.row()))  # type: ignore[attr-defined]
        session.commit()

    async def no_fallback(mail_from: str, recipients: tuple[str, ...],
                          content: bytes) -> set[str]:
        raise AssertionError("a reachable homeserver needs no fall-back")

    before = len(synapse.messages(room_id, token))
    worker = OutboxWorker(engine, BlobStore(engine), {"matrix": destination(synapse)},
                          no_fallback)
    assert asyncio.run(worker.run_once()) == 1
    assert asyncio.run(worker.run_once()) == 0  # done: never published again
    with Session(engine) as session:
        assert session.exec(select(OutboxJob)).one().state == DONE
    events = synapse.messages(room_id, token)[before:]
    assert len(events) == 1
    assert_carries_the_post(events[0]["content"]["body"])
    engine.dispose()
