"""Diversion end to end: real relay, smtp-sink upstream, a local HTTP receiver as webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import StartGateway
from tests.servers import GatewayProcess, HttpReceiver, SmtpSink

TEAM = ["ann@example.com", "bob@example.com", "cem@example.com", "dia@example.com",
        "eli@example.com"]
MESSAGE = (b"From: Boss <boss@example.com>\r\nTo: team@example.com\r\n"
           b"Subject: [FYI] Office closed on Friday\r\nMessage-ID: <fyi-1@example.com>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Hello all,\r\nthe office is closed on Friday. No action needed.\r\n")


def rules_file(tmp_path: Path, webhook_url: str = "", secret: str = "s3cret") -> Path:
    path = tmp_path / "rules.yaml"
    hook = (f'  team-hook: {{kind: webhook, url: "{webhook_url}", secret: "{secret}"}}\n'
            if webhook_url else "")
    hook_rule = ('  cem@example.com:\n'
                 '    - {match: {subject: "^\\\\[FYI\\\\]"}, action: divert, to: team-hook}\n'
                 if webhook_url else "")
    path.write_text(
        "internal_domains: [example.com]\n"
        "destinations:\n"
        "  team-space: {kind: space, channel: team-news}\n" + hook +
        "users:\n"
        "  ann@example.com:\n"
        '    - {match: {subject: "^\\\\[FYI\\\\]"}, action: divert, to: team-space}\n'
        "  bob@example.com:\n"
        '    - {match: {subject: "^\\\\[FYI\\\\]"}, action: divert, to: team-space}\n'
        + hook_rule
    )
    return path


@pytest.fixture()
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.stop()


def outcomes(data_dir: Path) -> dict[str, tuple[str, str, str]]:
    db = sqlite3.connect(data_dir / "sluice.db")
    try:
        rows = db.execute("select recipient, status, rule, destination from recipient_outcome")
        return {r: (status, rule, dest) for r, status, rule, dest in rows}
    finally:
        db.close()


def wait_for_jobs(data_dir: Path, states: set[str], timeout: float = 30) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        db = sqlite3.connect(data_dir / "sluice.db")
        rows = db.execute("select destination, state from outbox_job").fetchall()
        db.close()
        if rows and all(state in states for _, state in rows):
            return rows
        time.sleep(0.1)
    return rows


def test_cc_to_all_reaches_three_inboxes_and_the_channel_once(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path) -> None:
    gw = start_gateway(hook=None, upstream=clean_sink.address, classify=False,
                       rules_file=rules_file(tmp_path))
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        assert client.sendmail("boss@example.com", TEAM, MESSAGE) == {}
    (relayed,) = clean_sink.wait_for(1)
    assert sorted(relayed.rcpt_tos) == ["cem@example.com", "dia@example.com", "eli@example.com"]
    data = tmp_path / "data"
    assert wait_for_jobs(data, {"done"}) == [("team-space", "done")]
    db = sqlite3.connect(data / "sluice.db")
    posts = db.execute("select channel, subject, recipients from space_post").fetchall()
    assert [(c, s) for c, s, _ in posts] == [("team-news", "[FYI] Office closed on Friday")]
    assert sorted(posts[0][2].split("\n")) == TEAM  # every recipient may see the post
    seen = outcomes(data)
    assert seen["ann@example.com"][0] == seen["bob@example.com"][0] == "diverted"
    assert seen["ann@example.com"][2] == "team-space"
    assert {seen[r][0] for r in TEAM[2:]} == {"delivered"}
    # A retry of the same transaction posts nothing twice and delivers nothing twice.
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        assert client.sendmail("boss@example.com", TEAM, MESSAGE) == {}
    time.sleep(0.5)
    assert len(clean_sink.messages()) == 1
    assert db.execute("select count(*) from space_post").fetchone() == (1,)
    assert db.execute("select count(*) from outbox_job").fetchone() == (1,)


def test_webhook_receives_the_post_with_a_valid_signature(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path,
        receiver: HttpReceiver) -> None:
    gw = start_gateway(hook=None, upstream=clean_sink.address, classify=False,
                       rules_file=rules_file(tmp_path, receiver.url + "/hook"))
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("boss@example.com", TEAM, MESSAGE)
    ((path, headers, body),) = receiver.wait_for(1)
    assert path == "/hook"
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Sluice-Signature"] == expected
    payload = json.loads(body)
    assert {"message_id", "subject", "sender", "category", "text", "url",
            "attachments"} <= set(payload)
    assert payload["message_id"] == "<fyi-1@example.com>"
    assert payload["sender"] == "boss@example.com"
    assert "closed on Friday" in payload["text"]
    assert headers["X-Sluice-Delivery"] == payload["key"]
    assert wait_for_jobs(tmp_path / "data", {"done"})


def test_destination_down_past_the_deadline_falls_back_to_mail(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path,
        receiver: HttpReceiver) -> None:
    receiver.status = 503
    gw = start_gateway(hook=None, upstream=clean_sink.address, classify=False,
                       rules_file=rules_file(tmp_path, receiver.url + "/hook"),
                       outbox_deadline=3.0)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("boss@example.com", TEAM, MESSAGE)
    rows = wait_for_jobs(tmp_path / "data", {"done", "fallback"}, timeout=30)
    assert sorted(rows) == [("team-hook", "fallback"), ("team-space", "done")]
    assert len(receiver.requests) >= 1  # it was tried
    messages = clean_sink.wait_for(2)
    assert len(messages) == 2
    fallback = [m for m in messages if m.rcpt_tos == ["cem@example.com"]]
    assert len(fallback) == 1
    assert b"X-Sluice-Fallback: destination team-hook unavailable" in fallback[0].content
    assert fallback[0].content.endswith(MESSAGE.replace(b"\r\n", b"\n"))
    # Nobody got the message twice.
    rcpts = [r for m in messages for r in m.rcpt_tos]
    assert sorted(rcpts) == ["cem@example.com", "dia@example.com", "eli@example.com"]


def test_crash_between_outbox_write_and_publication_publishes_exactly_once(
        tmp_path: Path, clean_sink: SmtpSink, receiver: HttpReceiver) -> None:
    rules = rules_file(tmp_path, receiver.url + "/hook")
    gateway = GatewayProcess(tmp_path, "--upstream", clean_sink.address, "--no-classify",
                             "--rules", str(rules), "--no-worker")
    try:
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            assert client.sendmail("boss@example.com", TEAM, MESSAGE) == {}
        assert wait_for_jobs(tmp_path / "data", {"pending"}, timeout=5)
        gateway.kill()  # the posts are written, nothing is published yet
        assert receiver.requests == []
        gateway.args.remove("--no-worker")
        gateway.start()
        assert sorted(wait_for_jobs(tmp_path / "data", {"done"})) == [
            ("team-hook", "done"), ("team-space", "done")]
        time.sleep(1.0)  # give a duplicate the chance to show up
    finally:
        gateway.stop()
    assert len(receiver.requests) == 1
    db = sqlite3.connect(tmp_path / "data" / "sluice.db")
    assert db.execute("select count(*) from space_post").fetchone() == (1,)


def test_relayed_copies_name_where_the_message_was_posted(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path) -> None:
    gw = start_gateway(hook=None, upstream=clean_sink.address, classify=False,
                       rules_file=rules_file(tmp_path))
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("boss@example.com", TEAM, MESSAGE)
    (relayed,) = clean_sink.wait_for(1)
    assert b"\nX-Sluice-Posted-To: team-space <http://" in relayed.content
    assert relayed.content.endswith(MESSAGE.replace(b"\r\n", b"\n"))


def test_digest_lists_the_diverted_items_once(start_gateway: StartGateway,
                                              clean_sink: SmtpSink, tmp_path: Path) -> None:
    rules = tmp_path / "digest.yaml"
    rules.write_text(
        "internal_domains: [example.com]\n"
        "destinations:\n  news: {kind: space}\n"
        "users:\n  ann@example.com:\n"
        '    - {match: {subject: "^\\\\[FYI\\\\]"}, action: digest, to: news}\n')
    gw = start_gateway(hook=None, upstream=clean_sink.address, classify=False,
                       rules_file=rules)
    subjects = ["[FYI] Office closed on Friday", "[FYI] New coffee machine"]
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        for number, subject in enumerate(subjects):
            client.sendmail("boss@example.com", ["ann@example.com"],
                            MESSAGE.replace(b"[FYI] Office closed on Friday", subject.encode())
                            .replace(b"<fyi-1@", f"<fyi-{number + 10}@".encode()))
    assert clean_sink.messages() == []  # ann's inbox stays quiet
    assert gw.gateway is not None
    assert gw.call(gw.gateway.send_digests()) == 1
    (digest,) = clean_sink.wait_for(1)
    assert digest.rcpt_tos == ["ann@example.com"]
    assert b"X-Sluice-Generated: digest" in digest.content
    for subject in subjects:
        assert subject.encode() in digest.content
    assert gw.call(gw.gateway.send_digests()) == 0  # each item is listed once


def test_sender_of_a_diverted_broadcast_is_told_once_where_it_went(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path) -> None:
    from sluice.core.decision import RoutingDecision
    from sluice.core.mail import Mail
    from sluice.core.verdict import Verdict
    from sluice.router.decide import decide
    from sluice.router.rulesfile import load_rules

    path = tmp_path / "notes.yaml"
    path.write_text(
        "internal_domains: [example.com]\n"
        "destinations:\n  news: {kind: space, notify_sender: true}\n"
        "users:\n  ann@example.com:\n"
        "    - {match: {category: broadcast}, action: divert, to: news}\n")
    rules = load_rules(path)

    async def broadcast_hook(mail: Mail, recipients: tuple[str, ...]) -> RoutingDecision:
        # A fixed verdict keeps this test about notes, not about the model.
        return decide(mail, Verdict("broadcast", 0.95, ("test verdict",), "test"), rules)

    gw = start_gateway(hook=broadcast_hook, upstream=clean_sink.address, rules_file=path)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        for number in range(3):
            client.sendmail("boss@example.com", ["ann@example.com"],
                            MESSAGE.replace(b"<fyi-1@", f"<note-{number}@".encode()))
    assert sorted(wait_for_jobs(tmp_path / "data", {"done"})) == [("news", "done")] * 3
    (note,) = clean_sink.wait_for(1)
    time.sleep(1.0)  # a second note would show up by now
    assert len(clean_sink.messages()) == 1
    assert note.rcpt_tos == ["boss@example.com"]
    assert b"X-Sluice-Generated: sender-note" in note.content
    assert b"now lives in news" in note.content


def test_rules_stored_in_the_database_replace_the_users_rules_from_the_file(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path) -> None:
    from sqlmodel import Session

    from sluice.core.db import init_schema, make_engine
    from sluice.router.rulesdb import save_user_rules
    from sluice.router.rulesfile import load_rules, rule_from_data
    from tests.servers import gateway_settings

    path = rules_file(tmp_path)
    rules = load_rules(path)
    engine = make_engine(gateway_settings(tmp_path))
    init_schema(engine)
    with Session(engine) as session:
        # Ann, through the API: "keep my mail as mail".
        keep = rule_from_data({"match": {"subject": "^\\[FYI\\]"}, "action": "deliver"},
                              "ann@example.com", 1, rules.destinations, "test")
        save_user_rules(session, "ann@example.com", [keep])
        session.commit()
    engine.dispose()
    gw = start_gateway(hook=None, upstream=clean_sink.address, classify=False,
                       rules_file=path)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("boss@example.com", TEAM, MESSAGE)
    (relayed,) = clean_sink.wait_for(1)
    assert sorted(relayed.rcpt_tos) == ["ann@example.com", "cem@example.com", "dia@example.com",
                                        "eli@example.com"]  # only bob still diverts
