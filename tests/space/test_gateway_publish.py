"""The real publish path: SMTP into the gateway, rules divert to a space destination, the
outbox worker ingests the post (and a mail reply as a comment), the web API shows both —
only to the recipients."""

from __future__ import annotations

import hashlib
import smtplib
import sqlite3
import time
from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.core.db import make_engine
from tests.servers import GatewayThread, SmtpSink, gateway_settings
from tests.space.helpers import bearer, message

TEAM = ["ann@example.com", "bob@example.com", "cem@example.com"]
PDF = b"%PDF-1.4 the launch deck"


def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "internal_domains: [example.com]\n"
        "destinations:\n"
        "  launch-space: {kind: space, channel: launch}\n"
        "users:\n"
        "  ann@example.com:\n"
        '    - {match: {subject: "\\\\[launch\\\\]"}, action: divert, to: launch-space}\n'
        "  bob@example.com:\n"
        '    - {match: {subject: "\\\\[launch\\\\]"}, action: divert, to: launch-space}\n'
        "  boss@example.com:\n"
        '    - {match: {subject: "\\\\[launch\\\\]"}, action: divert, to: launch-space}\n')
    return path


def jobs_done(db_path: Path, count: int, timeout: float = 30) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        db = sqlite3.connect(db_path)
        try:
            rows = db.execute("select state, link from outbox_job order by id").fetchall()
        finally:
            db.close()
        if len(rows) >= count and all(state == "done" for state, _ in rows):
            return rows
        time.sleep(0.1)
    raise AssertionError(f"outbox jobs not done: {rows}")


def test_diverted_mail_and_its_reply_reach_the_space_through_the_outbox(
        tmp_path: Path, clean_sink: SmtpSink) -> None:
    settings = gateway_settings(tmp_path, rules_file=rules(tmp_path), classify=False,
                                upstream=clean_sink.address, base_url="http://sluice.test")
    gw = GatewayThread(settings, None)
    try:
        original = message("[launch] The deck", sender="boss@example.com", to=TEAM,
                           message_id="<deck@example.com>",
                           html="<p>Deck attached <script>alert(1)</script></p>",
                           files=[("deck.pdf", "application/pdf", PDF)])
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            assert client.sendmail("boss@example.com", TEAM, original) == {}
        ((_, link),) = jobs_done(settings.data_dir / "sluice.db", 1)
        assert link.startswith("http://sluice.test/space/launch/")
        post_id = int(link.rsplit("/", 1)[1])
        (relayed,) = clean_sink.wait_for(1)
        assert relayed.rcpt_tos == ["cem@example.com"]  # cem keeps mail

        reply = message("Re: [launch] The deck", sender="ann@example.com",
                        to=["boss@example.com"], cc=["bob@example.com", "cem@example.com"],
                        message_id="<deck-re@example.com>", in_reply_to="<deck@example.com>",
                        text="Slide 3 needs the new numbers.\n\n> Deck attached\n")
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("ann@example.com", ["boss@example.com", "bob@example.com",
                                                "cem@example.com"], reply)
        rows = jobs_done(settings.data_dir / "sluice.db", 2)
        assert rows[1][1] == f"{link}#comment-1"
    finally:
        gw.stop()

    engine = make_engine(settings)
    client = TestClient(create_app(engine))
    post = client.get(f"/api/posts/{post_id}", headers=bearer(engine, "cem@example.com"))
    assert post.status_code == 200  # cem kept the mail, but was a recipient: may read it
    body = post.json()
    assert body["subject"] == "[launch] The deck"
    assert "script" not in body["body_html"] and "Deck attached" in body["body_html"]
    assert [c["body_html"] for c in body["comments"]] == [
        "<p>Slide 3 needs the new numbers.</p>"]
    sha = hashlib.sha256(PDF).hexdigest()
    download = client.get(f"/api/posts/{post_id}/attachments/{sha}",
                          headers=bearer(engine, "bob@example.com"))
    assert download.content == PDF
    outsider = bearer(engine, "dia@example.com")
    assert client.get(f"/api/posts/{post_id}", headers=outsider).status_code == 404
    assert client.get("/api/search", params={"q": "deck"},
                      headers=outsider).json()["hits"] == []
    engine.dispose()
