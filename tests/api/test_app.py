"""The web app shows what the gateway recorded."""

from __future__ import annotations

import smtplib
from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api.app import create_app
from sluice.core.db import make_engine
from tests.servers import GatewayThread, gateway_settings


def test_pages_and_api_show_recorded_mail(tmp_path: Path) -> None:
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
    client = TestClient(create_app(engine))
    stats = client.get("/api/stats").json()
    assert stats["messages"] == 2
    assert stats["recipient_outcomes"] == {"delivered": 3}
    assert stats["inboxes"] == {"b@example.com": 2, "c@example.com": 1}
    messages = client.get("/api/messages", params={"limit": 1}).json()
    assert [m["subject"] for m in messages] == ["second"]
    assert client.get("/api/messages", params={"limit": 100000}).status_code == 422
    page = client.get("/")
    assert page.status_code == 200
    assert "quarterly &lt;numbers&gt;" in page.text  # escaped, never raw HTML
    assert client.get("/healthz").json() == {"status": "ok", "messages": 2}
    engine.dispose()
