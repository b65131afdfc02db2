"""The web app shows what the gateway recorded, to administrators only."""

from __future__ import annotations

import smtplib
from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api import people
from sluice.api.app import create_app
from sluice.core.db import init_schema, make_engine
from tests.servers import GatewayThread, gateway_settings


def test_admin_api_shows_recorded_mail(tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path)  # no upstream: local maildirs
    gw = GatewayThread(settings)
    try:
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            client.sendmail("a@example.com", ["b@example.com", "c@example.com"],
                            b"Subject: quarterly <numbers>\r\nMessage-ID: <q@x>\r\n\r\nhi\r\n")
            client.sendmail("a@example.com", ["b@example.com"],
                            b"Subject: second\r\nMessage-ID: <s@x>\r\n\r\nhi\r\n")
    finally:
        gw.stop()
    delivered = sorted(p.parent.parent.name for p in
                       (tmp_path / "data" / "mailboxes").glob("*/new/*"))
    assert delivered == ["b@example.com", "b@example.com", "c@example.com"]

    engine = make_engine(settings)
    init_schema(engine)
    people.ensure_user(engine, "admin@example.com", role="admin")
    people.ensure_user(engine, "b@example.com")
    admin = {"Authorization": f"Bearer {people.issue_token(engine, 'admin@example.com', 't')}"}
    member = {"Authorization": f"Bearer {people.issue_token(engine, 'b@example.com', 't')}"}
    client = TestClient(create_app(engine))

    assert client.get("/api/stats").status_code == 401
    assert client.get("/api/messages").status_code == 401
    assert client.get("/api/stats", headers=member).status_code == 403
    assert client.get("/api/messages", headers=member).status_code == 403

    stats = client.get("/api/stats", headers=admin).json()
    assert stats["messages"] == 2
    assert stats["recipient_outcomes"] == {"delivered": 3}
    assert stats["inboxes"] == {"b@example.com": 2, "c@example.com": 1}
    messages = client.get("/api/messages", params={"limit": 1}, headers=admin).json()
    assert [m["subject"] for m in messages] == ["second"]
    assert client.get("/api/messages", params={"limit": 100000},
                      headers=admin).status_code == 422
    assert client.get("/healthz").json() == {"status": "ok", "messages": 2}
    engine.dispose()


def test_home_sends_anonymous_people_to_sign_in(tmp_path: Path) -> None:
    engine = make_engine(gateway_settings(tmp_path))
    init_schema(engine)
    people.ensure_user(engine, "b@example.com")
    token = people.issue_token(engine, "b@example.com", "t")
    client = TestClient(create_app(engine))
    home = client.get("/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (303, "/login")
    home = client.get("/", headers={"Authorization": f"Bearer {token}"},
                      follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (303, "/space")
    engine.dispose()
