"""Mixed threads through the real gateway, outbox and smtp-sink: a comment written in the space
reaches the thread's mail users as a reply, their mail reply comes back as a comment, and
"send me this as mail" re-delivers a post."""

from __future__ import annotations

import email
import smtplib
import time
from collections.abc import Callable
from email.message import Message
from email.policy import compat32
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import col

from sluice.api.app import create_app
from sluice.api.people import ensure_user, issue_token
from sluice.core.db import make_engine
from sluice.core.tables_space import Comment, SpacePost
from sluice.space import mailback
from tests.servers import GatewayThread, SinkMessage, SmtpSink, gateway_settings

RULES = """\
internal_domains: [example.com]
destinations:
  offers: {kind: space, channel: offers}
users:
  alice@example.com:
    - {match: {subject: "^Offer"}, action: divert, to: offers}
"""
ROOT = (b"From: Carol <carol@example.com>\r\nTo: alice@example.com, bob@example.com\r\n"
        b"Subject: Offer v2 for ACME\r\nMessage-ID: <root@example.com>\r\n"
        b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\nThe new offer, for your comments.\r\n")


def internal(address: str) -> bool:
    return address.endswith("@example.com")


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def the_post(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(SpacePost)).first()


def comments(engine: Engine, post_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Comment).where(col(Comment.post_id) == post_id)
                                 .order_by(col(Comment.id))))


def parsed(content: bytes) -> Message:
    return email.message_from_bytes(content, policy=compat32)


def arrived(sink: SmtpSink, count: int) -> list[SinkMessage]:
    """The first `count` transactions, oldest first (the dump files' names only have seconds)."""
    found = sink.wait_for(count)
    assert len(found) == count
    return found


def carrying(found: list[SinkMessage], header: str, value: str) -> SinkMessage:
    [match] = [m for m in found if parsed(m.content)[header] == value]
    return match


def test_comment_goes_out_as_a_reply_and_the_reply_comes_back(tmp_path: Path,
                                                              clean_sink: SmtpSink) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = gateway_settings(tmp_path, upstream=clean_sink.address, rules_file=rules,
                                classify=False)
    gw = GatewayThread(settings, hook=None)
    try:
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("carol@example.com", ["alice@example.com", "bob@example.com"], ROOT)
        [kept] = clean_sink.wait_for(1)
        assert kept.rcpt_tos == ["bob@example.com"]  # alice reads it in the space
        engine = make_engine(settings)
        post = wait_until(lambda: the_post(engine))

        # Alice comments in the space (REST API); bob and carol still use mail for it.
        ensure_user(engine, "alice@example.com", name="Alice")
        ensure_user(engine, "dave@example.com", name="Dave")
        web = TestClient(create_app(engine, settings))
        alice = {"Authorization": f"Bearer {issue_token(engine, 'alice@example.com', 't')}"}
        dave = {"Authorization": f"Bearer {issue_token(engine, 'dave@example.com', 't')}"}
        answer = web.post(f"/api/posts/{post.id}/comments", headers=alice,
                          json={"body": "Price on page 2 looks too low."})
        assert answer.status_code == 201, answer.text
        gw.gateway.worker.wake()  # type: ignore[union-attr]
        reply_mail = carrying(arrived(clean_sink, 2), "In-Reply-To", "<root@example.com>")
        assert sorted(reply_mail.rcpt_tos) == ["bob@example.com", "carol@example.com"]
        out = parsed(reply_mail.content)
        assert out["From"] == "Alice <alice@example.com>"
        assert out["Subject"] == "Re: Offer v2 for ACME"
        assert out["In-Reply-To"] == "<root@example.com>"
        assert "<root@example.com>" in out["References"]
        assert "Price on page 2 looks too low." in out.get_payload(decode=True).decode()
        comment_id = out["Message-ID"]
        assert [c.message_id for c in comments(engine, post.id)] == [comment_id]

        # Bob answers by mail, to everyone: alice's copy follows the thread into the space.
        answer = (f"From: Bob <bob@example.com>\r\nTo: alice@example.com, carol@example.com\r\n"
                  f"Subject: Re: Offer v2 for ACME\r\nMessage-ID: <bob-1@example.com>\r\n"
                  f"In-Reply-To: {comment_id}\r\nReferences: <root@example.com> {comment_id}"
                  f"\r\n\r\nAgreed, let us raise it by 5%.\r\n").encode()
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("bob@example.com", ["alice@example.com", "carol@example.com"],
                            answer)
        third = carrying(arrived(clean_sink, 3), "Message-ID", "<bob-1@example.com>")
        assert third.rcpt_tos == ["carol@example.com"]  # carol keeps mail; alice does not
        found = wait_until(lambda: [c for c in comments(engine, post.id)
                                    if c.message_id == "<bob-1@example.com>"])
        assert found[0].author == "bob@example.com"
        assert "raise it by 5%" in found[0].body_text
        assert len(comments(engine, post.id)) == 2  # a comment, not a new post
        with engine.connect() as conn:
            assert len(list(conn.execute(select(SpacePost)))) == 1

        # "Send me this as mail": alice gets the original in her inbox after all; dave, who
        # was not a recipient, cannot even tell the post exists.
        assert web.post(f"/api/posts/{post.id}/send-to-me", headers=dave).status_code == 404
        for _ in range(2):  # a double click sends it once
            sent = web.post(f"/api/posts/{post.id}/send-to-me", headers=alice)
            assert (sent.status_code, sent.json()["queued"]) == (202, True)
        gw.gateway.worker.wake()  # type: ignore[union-attr]
        resent = [m for m in arrived(clean_sink, 4) if b"X-Sluice-Resent" in m.content]
        time.sleep(1.5)  # a second copy would arrive within the worker's next rounds
        assert len(clean_sink.messages()) == 4
        [again] = resent
        assert again.rcpt_tos == ["alice@example.com"]
        original = parsed(again.content)
        assert original["Message-ID"] == "<root@example.com>"
        assert original["X-Sluice-Resent"].startswith("from the shared space for alice@")
        assert ROOT.split(b"\r\n\r\n")[1].strip() in again.content
    finally:
        gw.stop()


def test_mail_keepers_leave_out_diverters_the_author_and_outsiders(tmp_path: Path,
                                                                    clean_sink: SmtpSink) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = gateway_settings(tmp_path, upstream=clean_sink.address, rules_file=rules,
                                classify=False)
    gw = GatewayThread(settings, hook=None)
    try:
        message = ROOT.replace(b"To: alice@example.com, bob@example.com",
                               b"To: alice@example.com, bob@example.com, pat@partner.example")
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("carol@example.com", ["alice@example.com", "bob@example.com",
                                                  "pat@partner.example"], message)
        engine = make_engine(settings)
        post = wait_until(lambda: the_post(engine))
        with engine.connect() as conn:
            keepers = mailback.mail_keepers(conn, post, exclude="bob@example.com",
                                            internal=internal)
        assert keepers == ("carol@example.com",)  # not alice (space), bob (author), pat
    finally:
        gw.stop()
