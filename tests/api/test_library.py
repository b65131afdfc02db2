"""The library's REST API and page: documents, versions and downloads for recipients only
(404 for everyone else, 401 anonymous), and a real message through gateway, outbox, ingest
and the library hook."""

from __future__ import annotations

import smtplib
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api import people
from sluice.api.app import create_app
from sluice.core.db import make_engine
from sluice.core.decision import RoutingDecision
from sluice.core.mail import Mail
from sluice.core.verdict import Verdict
from sluice.router.decide import decide
from sluice.router.rulesfile import load_rules
from tests.api.board_app import PASSWORD, BoardApp, board_app
from tests.servers import GatewayThread, gateway_settings
from tests.space.board_mail import PNG, mime, publish
from tests.webauth import sign_in

PDF = "application/pdf"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _library(tmp_path: Path) -> BoardApp:
    app = board_app(tmp_path)
    publish(app.engine, mime("Pricing", files=[("Pricing v1.pdf", PDF, b"%PDF one")]),
            category="material", recipients=["ann@example.com", "bob@example.com"],
            received_at=T0)
    publish(app.engine, mime("Pricing for Ann", sender="kim@example.com",
                             files=[("Pricing v2 final.pdf", PDF, b"%PDF two")]),
            category="material", recipients=["ann@example.com"],
            received_at=T0 + timedelta(hours=1))
    return app


def test_recipients_list_documents_and_download_versions(tmp_path: Path) -> None:
    app = _library(tmp_path)
    response = app.get("/api/channels/sales/documents", "ann@example.com")
    assert response.status_code == 200
    (doc,) = response.json()
    assert doc["name"] == "Pricing v2 final.pdf"
    assert [v["version"] for v in doc["versions"]] == [2, 1]
    assert (doc["latest"]["sender"], doc["versions"][1]["sender"]) == (
        "kim@example.com", "ann@example.com")
    download = app.get(doc["latest"]["download_url"], "ann@example.com")
    assert download.status_code == 200
    assert download.content == b"%PDF two"
    assert download.headers["content-type"] == PDF
    assert 'filename="Pricing v2 final.pdf"' in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"
    # Bob received version 1 only: version 2 does not exist for him.
    seen_by_bob = app.get(f"/api/documents/{doc['id']}", "bob@example.com").json()
    assert [v["version"] for v in seen_by_bob["versions"]] == [1]
    assert app.get(f"/api/documents/{doc['id']}/versions/2/download",
                   "bob@example.com").status_code == 404
    assert app.get(f"/api/documents/{doc['id']}/versions/1/download",
                   "bob@example.com").content == b"%PDF one"
    app.engine.dispose()


def test_people_who_got_none_of_it_get_404_and_anonymous_401(tmp_path: Path) -> None:
    app = _library(tmp_path)
    (doc,) = app.get("/api/channels/sales/documents", "ann@example.com").json()
    paths = [f"/api/documents/{doc['id']}", doc["latest"]["download_url"],
             f"/api/documents/{doc['id']}/versions/1/download"]
    for path in paths:
        for outsider in ("eve@example.com", "root@example.com"):
            assert app.get(path, outsider).status_code == 404, (path, outsider)
        assert app.get(path, None).status_code == 401
    assert app.get("/api/channels/sales/documents", "eve@example.com").status_code == 404
    # Admins manage every channel, but they see no one's material.
    assert app.get("/api/channels/sales/documents", "root@example.com").json() == []
    assert app.get("/api/channels/sales/documents", None).status_code == 401
    assert app.get("/api/channels/nowhere/documents", "ann@example.com").status_code == 404
    assert app.get("/api/documents/999", "ann@example.com").status_code == 404
    app.engine.dispose()


def test_library_page_shows_latest_version_first_with_history(tmp_path: Path) -> None:
    app = _library(tmp_path)
    client = TestClient(create_app(app.engine))
    assert client.get("/library", follow_redirects=False).status_code == 303
    sign_in(client, "ann@example.com", PASSWORD)
    page = client.get("/library")
    assert page.status_code == 200
    text = page.text
    assert text.index("Download Pricing v2 final.pdf") < text.index("Pricing v1.pdf")
    assert "History (2 versions)" in text and "kim@example.com" in text
    eve = TestClient(create_app(app.engine))
    sign_in(eve, "eve@example.com", PASSWORD)
    assert "Pricing" not in eve.get("/library").text
    app.engine.dispose()


RULES = """\
internal_domains: [example.com]
destinations:
  sales-space: {kind: space, channel: sales}
policy:
  - name: material to the library
    match: {category: material}
    action: divert
    to: sales-space
"""


def test_real_mail_through_gateway_outbox_and_ingest_reaches_the_library(
        tmp_path: Path) -> None:
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(RULES)
    rules = load_rules(rules_path)

    async def material(mail: Mail, recipients: tuple[str, ...]) -> RoutingDecision:
        """The production routing with a fixed verdict (the classifier is tested elsewhere)."""
        return decide(mail, Verdict("material", 0.99, ("test",), "test"), rules)

    settings = gateway_settings(tmp_path, rules_file=rules_path)
    gateway = GatewayThread(settings, material)
    team = ["ann@example.com", "bob@example.com"]
    messages = [
        mime("Sales deck", sender="kim@example.com", to=team, logo=True,
             files=[("Sales deck.pptx", "application/vnd.ms-powerpoint", b"deck v1"),
                    ("logo.png", "image/png", PNG)]),
        mime("Sales deck updated", sender="kim@example.com", to=team, logo=True,
             files=[("Sales deck v2.pptx", "application/vnd.ms-powerpoint", b"deck v2")]),
        mime("Sales deck again", sender="kim@example.com", to=team,
             files=[("Sales deck (1).pptx", "application/vnd.ms-powerpoint", b"deck v2")]),
    ]
    try:
        with smtplib.SMTP("127.0.0.1", gateway.port) as client:
            for raw in messages:
                assert client.sendmail("kim@example.com", team, raw) == {}
        _wait_for_done_jobs(settings.data_dir / "sluice.db", len(messages))
    finally:
        gateway.stop()
    engine = make_engine(settings)
    app = BoardApp(engine, TestClient(create_app(engine)), {})
    people.ensure_user(engine, "bob@example.com")
    people.ensure_user(engine, "eve@example.com")
    app.tokens = {e: people.issue_token(engine, e, "t") for e in ("bob@example.com",
                                                                   "eve@example.com")}
    docs = app.get("/api/channels/sales/documents", "bob@example.com").json()
    # The explicitly attached logo is a file of its own; the inline one is not material.
    assert sorted(d["name"] for d in docs) == ["Sales deck v2.pptx", "logo.png"]
    deck = next(d for d in docs if d["name"] == "Sales deck v2.pptx")
    assert [v["version"] for v in deck["versions"]] == [2, 1]
    assert len(deck["latest"]["sends"]) == 2  # sent again, stored once
    assert app.get(deck["latest"]["download_url"], "bob@example.com").content == b"deck v2"
    assert app.get(deck["latest"]["download_url"], "eve@example.com").status_code == 404
    db = sqlite3.connect(settings.data_dir / "sluice.db")
    try:
        (blobs,) = db.execute("select count(*) from blob where data = ?", (b"deck v2",)).fetchone()
    finally:
        db.close()
    assert blobs == 1
    engine.dispose()


def _wait_for_done_jobs(path: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        db = sqlite3.connect(path)
        try:
            states = [s for (s,) in db.execute("select state from outbox_job")]
        finally:
            db.close()
        if len(states) == count and set(states) == {"done"}:
            return
        time.sleep(0.1)
    raise AssertionError(f"outbox jobs not done: {states}")
