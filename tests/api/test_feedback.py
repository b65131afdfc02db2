"""The feedback board's REST API and page: filters, PATCH with CSRF for cookie sessions,
404 for items of posts the viewer cannot see, 401 anonymous."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api.app import create_app
from tests.api.board_app import PASSWORD, BoardApp, board_app
from tests.space.board_mail import mime, publish
from tests.webauth import sign_in

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def _board(tmp_path: Path) -> BoardApp:
    app = board_app(tmp_path)
    publish(app.engine, mime("Customer wants SSO", sender="kim@customer.example"),
            category="feedback", recipients=["ann@example.com", "bob@example.com"],
            received_at=T0)
    publish(app.engine, mime("Partner: price too high", sender="lee@partner.example"),
            category="feedback", recipients=["ann@example.com"],
            received_at=T0 + timedelta(hours=1))
    return app


def test_list_filter_and_change_with_a_token(tmp_path: Path) -> None:
    app = _board(tmp_path)
    items = app.get("/api/feedback", "ann@example.com").json()
    assert [(i["title"], i["status"]) for i in items] == [
        ("Partner: price too high", "new"), ("Customer wants SSO", "new")]
    sso = app.get("/api/feedback", "ann@example.com", domain="customer.example").json()
    assert [i["title"] for i in sso] == ["Customer wants SSO"]
    assert sso[0]["post_url"].startswith("/space/sales/")
    changed = app.client.patch(f"/api/feedback/{sso[0]['id']}", headers=app.auth(
        "bob@example.com"), json={"status": "planned", "owner": "ann@example.com"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["status"], body["owner"]) == ("planned", "ann@example.com")
    assert [(h["actor"], h["field"], h["new"]) for h in body["history"]] == [
        ("bob@example.com", "status", "planned"), ("bob@example.com", "owner",
                                                   "ann@example.com")]
    assert [i["title"] for i in app.get("/api/feedback", "ann@example.com",
                                        status="planned").json()] == ["Customer wants SSO"]
    assert app.get("/api/feedback", "ann@example.com", status="maybe").status_code == 422
    bad = app.client.patch(f"/api/feedback/{sso[0]['id']}", headers=app.auth(
        "ann@example.com"), json={"status": "maybe"})
    assert bad.status_code == 422
    outsider_owner = app.client.patch(f"/api/feedback/{sso[0]['id']}", headers=app.auth(
        "ann@example.com"), json={"owner": "eve@example.com"})
    assert outsider_owner.status_code == 422
    app.engine.dispose()


def test_items_of_posts_the_viewer_cannot_see_are_404(tmp_path: Path) -> None:
    app = _board(tmp_path)
    partner = app.get("/api/feedback", "ann@example.com", domain="partner.example").json()[0]
    for outsider in ("bob@example.com", "eve@example.com", "root@example.com"):
        assert app.get(f"/api/feedback/{partner['id']}", outsider).status_code == 404
        patched = app.client.patch(f"/api/feedback/{partner['id']}",
                                   headers=app.auth(outsider), json={"status": "done"})
        assert patched.status_code == 404
    assert [i["title"] for i in app.get("/api/feedback", "bob@example.com").json()] == [
        "Customer wants SSO"]
    assert app.get("/api/feedback", "eve@example.com").json() == []
    assert app.get("/api/feedback", None).status_code == 401
    assert app.get(f"/api/feedback/{partner['id']}", None).status_code == 401
    assert app.client.patch(f"/api/feedback/{partner['id']}",
                            json={"status": "done"}).status_code == 401
    assert app.get(f"/api/feedback/{partner['id']}", "ann@example.com").json()[
        "status"] == "new"
    app.engine.dispose()


def test_cookie_session_needs_the_csrf_token_and_the_page_shows_columns(
        tmp_path: Path) -> None:
    app = _board(tmp_path)
    client = TestClient(create_app(app.engine))
    csrf = sign_in(client, "ann@example.com", PASSWORD)
    item = client.get("/api/feedback", params={"domain": "partner.example"}).json()[0]
    assert client.patch(f"/api/feedback/{item['id']}",
                        json={"status": "declined"}).status_code == 403
    done = client.patch(f"/api/feedback/{item['id']}", json={"status": "declined"},
                        headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["status"] == "declined"
    page = client.get("/feedback")
    assert page.status_code == 200
    declined = page.text.split('data-status="declined"')[1]
    assert "Partner: price too high" in declined
    assert "Customer wants SSO" in page.text.split('data-status="new"')[1].split(
        'data-status="acknowledged"')[0]
    assert '<script src="/static/board.js" defer></script>' in page.text
    filtered = client.get("/feedback", params={"domain": "customer.example"})
    assert "Partner: price too high" not in filtered.text
    app.engine.dispose()
