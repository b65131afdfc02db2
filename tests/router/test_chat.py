"""Chat destinations through apprise: the payload each service receives, on a local receiver.

Mattermost (incoming webhook), a generic `json://` receiver and Matrix (login, join, room
message: the client-server API answered by `MatrixReceiver` below) are reached by their own
URLs on 127.0.0.1. Slack and Discord only post to their cloud hosts; their plugins keep the
host in a class attribute, which the tests point at the receiver to see the exact request.
Microsoft Teams (apprise's `workflows://`) is https-only: covered by apprise's own tests.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from sluice.core.db import init_schema, make_engine
from sluice.core.mail import Attachment
from sluice.core.post import Post
from sluice.core.settings import load_settings
from sluice.core.tables_router import DONE, PENDING, Blob, OutboxJob
from sluice.router.blobs import BlobStore, blob_row
from sluice.router.destinations import AppriseDestination, PublishError, chat_text
from sluice.router.outbox import OutboxEntry, OutboxWorker
from tests.servers import HttpReceiver

SUBJECT = "Q3 price list for the *new* range"
SENDER = "pat@partner.example"
SENDER_NAME = "Pat Partner"
EXCERPT = "Hello all,\n\nthe Q3 prices are attached.\nPlease use them from Monday."
ATTACHMENTS = ("prices-q3.xlsx", "terms and conditions.pdf")
URL = "http://127.0.0.1:8025/m/4f2a9c"


def make_post(destination: str = "chat") -> Post:
    return Post(
        key=f"4f2a9c:{destination}", destination=destination, fingerprint="4f2a9c",
        message_id="<q3@partner.example>", subject=SUBJECT, sender=SENDER,
        sender_name=SENDER_NAME, category="material", confidence=0.91,
        received_at=datetime(2024, 5, 6, 9, 30, tzinfo=UTC), excerpt=EXCERPT, url=URL,
        attachments=tuple(Attachment(name, "application/octet-stream", 100, "0" * 64)
                          for name in ATTACHMENTS),
        recipients=("alice@example.com", "bob@example.com"), thread_subject="q3 price list",
        in_reply_to="")


def publish(destination: AppriseDestination, post: Post | None = None) -> None:
    asyncio.run(destination.publish(post or make_post(), "0" * 64))


def assert_carries_the_post(text: str, *, subject: bool = True) -> None:
    """Subject, sender, every excerpt line, attachment names and the link are all there."""
    if subject:
        assert SUBJECT in text
    assert SENDER in text and SENDER_NAME in text
    for line in EXCERPT.splitlines():
        assert line in text
    for name in ATTACHMENTS:
        assert name in text
    assert URL in text


def strings(value: Any) -> str:
    """Every string inside a JSON value, one per line (payload shapes differ per service)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(strings(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(strings(v) for v in value)
    return ""


@pytest.fixture()
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.stop()


# --- formatting -----------------------------------------------------------------------


def test_chat_text_plain_and_markdown() -> None:
    title, body = chat_text(make_post())
    assert title == SUBJECT
    assert body.splitlines()[0] == f"From {SENDER_NAME} ({SENDER}) (material)"
    assert_carries_the_post(body, subject=False)
    assert "**" not in body and "> " not in body

    title, body = chat_text(make_post(), markdown=True, subject_in_body=True)
    assert title == ""
    lines = body.splitlines()
    assert lines[0] == f"**{SUBJECT}**"
    assert lines[1] == f"From **{SENDER_NAME} ({SENDER})** · material"
    assert [line for line in lines if line.startswith(">")] == [
        "> Hello all,", ">", "> the Q3 prices are attached.", "> Please use them from Monday."]
    assert "Attachments: `prices-q3.xlsx`, `terms and conditions.pdf`" in lines
    assert lines[-1] == f"Full message: {URL}"


# --- Mattermost -----------------------------------------------------------------------


def test_mattermost_incoming_webhook_payload(receiver: HttpReceiver) -> None:
    # mmost:// is apprise's plain-http Mattermost scheme (mmosts:// is https).
    destination = AppriseDestination("team", f"mmost://127.0.0.1:{receiver.port}/hooktoken")
    publish(destination)
    [(path, headers, body)] = receiver.requests
    assert path == "/hooks/hooktoken"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    text = payload["text"]
    # Mattermost messages have no title: the subject leads the Markdown body.
    assert text.splitlines()[0] == f"**{SUBJECT}**"
    assert f"From **{SENDER_NAME} ({SENDER})**" in text
    assert "> the Q3 prices are attached." in text
    assert_carries_the_post(text)


# --- generic JSON ---------------------------------------------------------------------


def test_generic_json_receiver_payload(receiver: HttpReceiver) -> None:
    destination = AppriseDestination(
        "generic", f"json://127.0.0.1:{receiver.port}/sluice/hook")
    publish(destination)
    [(path, headers, body)] = receiver.requests
    assert path == "/sluice/hook"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["title"] == SUBJECT
    assert_carries_the_post(payload["message"], subject=False)
    assert "**" not in payload["message"]  # an unknown reader gets plain text


# --- Matrix ---------------------------------------------------------------------------


class ScriptedReceiver:
    """Like tests.servers.HttpReceiver, for any method and with the answer chosen per
    request (`answer`); records (method, path, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                receiver.requests.append((self.command, path, body))
                status, data = receiver.answer(self.command, path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, method: str, path: str) -> tuple[int, bytes]:
        return self.status, b"{}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SlackReceiver(ScriptedReceiver):
    """A Slack incoming webhook answers 200 with the text `ok`."""

    def answer(self, method: str, path: str) -> tuple[int, bytes]:
        return self.status, b"ok" if self.status == 200 else b"server_error"


class MatrixReceiver(ScriptedReceiver):
    """The Matrix client-server API calls apprise makes to post into a room by alias:
    password login, join by alias, send an m.room.message (`status` answers the send)."""

    ROOM_ID = "!sluiceroom:localhost"

    def answer(self, method: str, path: str) -> tuple[int, bytes]:
        status, reply = self._reply(method, path)
        return status, json.dumps(reply).encode()

    def _reply(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path.endswith("/login"):
            return 200, {"access_token": "secret-token", "user_id": "@sluice:localhost",
                         "device_id": "SLUICE", "home_server": "localhost"}
        if method == "POST" and "/join/" in path:
            return 200, {"room_id": self.ROOM_ID}
        if method == "PUT" and "/send/m.room.message/" in path:
            if self.status != 200:
                return self.status, {"errcode": "M_UNKNOWN", "error": "down"}
            return 200, {"event_id": "$event1"}
        return 404, {"errcode": "M_UNRECOGNIZED", "error": f"not answered: {method} {path}"}


@pytest.fixture()
def matrix() -> Iterator[MatrixReceiver]:
    server = MatrixReceiver()
    yield server
    server.stop()


def test_matrix_room_message_after_login_and_join(matrix: MatrixReceiver) -> None:
    # matrix:// is plain http; the room alias's '#' is %23 in the URL.
    destination = AppriseDestination(
        "matrix", f"matrix://sluice:pw@127.0.0.1:{matrix.port}/%23offering-updates")
    publish(destination)
    calls = [(method, path) for method, path, _ in matrix.requests]
    assert calls[0] == ("POST", "/_matrix/client/v3/login")
    assert json.loads(matrix.requests[0][2])["password"] == "pw"
    assert ("POST", "/_matrix/client/v3/join/%23offering-updates%3Alocalhost") in calls
    sends = [(path, json.loads(body)) for method, path, body in matrix.requests
             if method == "PUT"]
    assert len(sends) == 1
    path, event = sends[0]
    assert path.startswith("/_matrix/client/v3/rooms/%21sluiceroom%3Alocalhost/send/"
                           "m.room.message/")
    assert event["msgtype"] == "m.text"
    assert_carries_the_post(event["body"])
    html = event["formatted_body"]
    assert event["format"] == "org.matrix.custom.html"
    assert "<blockquote>" in html and f"<strong>{SENDER_NAME} ({SENDER})</strong>" in html
    assert_carries_the_post(html.replace("<em>", "*").replace("</em>", "*"))


def test_matrix_send_failure_raises(matrix: MatrixReceiver) -> None:
    matrix.status = 500
    destination = AppriseDestination(
        "matrix", f"matrix://sluice:pw@127.0.0.1:{matrix.port}/%23offering-updates")
    with pytest.raises(PublishError, match="matrix"):
        publish(destination)
    assert any(method == "PUT" for method, _, _ in matrix.requests)


# --- Slack and Discord: cloud hosts, pointed at the receiver --------------------------


def slack(receiver: ScriptedReceiver) -> AppriseDestination:
    destination = AppriseDestination(
        "slack", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7/#sales")
    plugin: Any = destination._apprise[0]
    plugin.webhook_url = f"{receiver.url}/services"  # normally https://hooks.slack.com
    return destination


def discord(receiver: HttpReceiver | ScriptedReceiver) -> AppriseDestination:
    destination = AppriseDestination(
        "discord", "discord://417429632418316298/JHZ7lQml277CDHmQKMHI8qBe7bk2ZwO5UKjCiOAF7711o33")
    plugin: Any = destination._apprise[0]
    plugin.notify_url = f"{receiver.url}/api/webhooks"  # normally https://discord.com
    return destination


@pytest.fixture()
def slack_receiver() -> Iterator[SlackReceiver]:
    server = SlackReceiver()
    yield server
    server.stop()


def test_slack_webhook_payload(slack_receiver: SlackReceiver) -> None:
    publish(slack(slack_receiver))
    [(_, path, body)] = slack_receiver.requests
    assert path == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    payload = json.loads(body)
    assert payload["channel"] == "#sales"
    assert_carries_the_post(strings(payload))


def test_discord_webhook_payload(receiver: HttpReceiver) -> None:
    publish(discord(receiver))
    [(path, _, body)] = receiver.requests
    assert path.startswith("/api/webhooks/417429632418316298/")
    payload = json.loads(body)
    assert_carries_the_post(strings(payload))


# --- failures and the outbox ----------------------------------------------------------


@pytest.mark.parametrize("service", ["mattermost", "json", "slack", "discord"])
def test_http_500_raises_publish_error(service: str) -> None:
    receiver = SlackReceiver() if service == "slack" else ScriptedReceiver()
    try:
        receiver.status = 500
        port = receiver.port
        destination = {
            "mattermost": lambda: AppriseDestination("m", f"mmost://127.0.0.1:{port}/t"),
            "json": lambda: AppriseDestination("j", f"json://127.0.0.1:{port}/hook"),
            "slack": lambda: slack(receiver),
            "discord": lambda: discord(receiver),
        }[service]()
        with pytest.raises(PublishError, match=f"chat destination {destination.name} "):
            publish(destination)
        assert len(receiver.requests) >= 1  # it was tried, and refused
        receiver.status = 200
        publish(destination)  # the same destination publishes once the service is back
    finally:
        receiver.stop()


def test_outbox_retries_a_chat_post_after_500_and_publishes_once(
        receiver: HttpReceiver, tmp_path: Path) -> None:
    engine = make_engine(load_settings(None, data_dir=tmp_path))
    init_schema(engine)
    blobs = BlobStore(engine)
    raw = b"From: pat@partner.example\r\nSubject: Q3\r\n\r\nprices\r\n"
    blob = blob_row(raw)
    post = make_post("team")
    entry = OutboxEntry(post, blob["sha256"], ("alice@example.com",), SENDER,
                        datetime.now(UTC) + timedelta(hours=1), blob)
    with Session(engine) as session:
        session.execute(Blob.__table__.insert().values(**blob))  # type: ignore[attr-defined]
        session.execute(OutboxJob.__table__.insert().values(**entry.row()))  # type: ignore[attr-defined]
        session.commit()
    fallbacks: list[tuple[str, ...]] = []

    async def fallback(mail_from: str, recipients: tuple[str, ...], content: bytes) -> set[str]:
        fallbacks.append(recipients)
        return set()

    destination = AppriseDestination("team", f"mmost://127.0.0.1:{receiver.port}/hooktoken")
    worker = OutboxWorker(engine, blobs, {"team": destination}, fallback)

    def job() -> OutboxJob:
        with Session(engine) as session:
            return session.exec(select(OutboxJob)).one()

    receiver.status = 500
    assert asyncio.run(worker.run_once()) == 1
    first = job()
    assert (first.state, first.attempts) == (PENDING, 1)
    assert "chat destination team" in first.last_error
    assert len(receiver.requests) == 1
    assert asyncio.run(worker.run_once()) == 0  # backing off: not due yet

    receiver.status = 200
    with Session(engine) as session:  # the backoff has passed
        session.execute(update(OutboxJob).where(col(OutboxJob.id) == first.id)
                        .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    assert asyncio.run(worker.run_once()) == 1
    done = job()
    assert (done.state, done.attempts, done.link) == (DONE, 2, URL)
    assert len(receiver.requests) == 2
    assert_carries_the_post(json.loads(receiver.requests[1][2])["text"])
    assert asyncio.run(worker.run_once()) == 0  # published once, never again
    assert len(receiver.requests) == 2
    assert fallbacks == []
