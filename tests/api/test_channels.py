"""The channels API and pages: unread counts per person, pages newest first, admins open
channels; nothing is listed for someone who received nothing in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api import people
from sluice.api.app import create_app
from tests.space.helpers import bearer, message, post_id_of, publish, space_engine
from tests.webauth import sign_in

T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


def test_channels_posts_and_unread_counts(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    client = TestClient(create_app(engine))
    ann, bob = bearer(engine, "ann@example.com"), bearer(engine, "bob@example.com")
    admin = bearer(engine, "root@example.com", role="admin")
    ids = [post_id_of(publish(engine, message(f"Update {n}", to=["ann@example.com"]),
                              channel="updates", recipients=["ann@example.com"],
                              received_at=T0 + timedelta(hours=n))) for n in range(5)]
    publish(engine, message("Lunch <Friday>", to=["bob@example.com"]), channel="social",
            recipients=["bob@example.com"])

    listed = client.get("/api/channels", headers=ann).json()
    assert listed == [{"name": "updates", "title": "updates", "description": "", "open": False,
                       "posts": 5, "unread": 5, "url": "/space/updates"}]
    assert [c["name"] for c in client.get("/api/channels", headers=bob).json()] == ["social"]

    first = client.get("/api/channels/updates/posts", params={"limit": 2}, headers=ann).json()
    assert [p["id"] for p in first["posts"]] == ids[::-1][:2]
    rest = client.get("/api/channels/updates/posts",
                      params={"limit": 10, "before": first["next_cursor"]}, headers=ann).json()
    assert [p["id"] for p in rest["posts"]] == ids[::-1][2:]
    assert rest["next_cursor"] is None
    assert client.get("/api/channels/updates/posts", params={"before": "%%%"},
                      headers=ann).status_code == 400
    assert client.get("/api/channels/updates/posts", params={"limit": 1000},
                      headers=ann).status_code == 422

    client.put(f"/api/posts/{ids[0]}/read", headers=ann)
    assert client.get("/api/channels", headers=ann).json()[0]["unread"] == 4
    # Bob received nothing in "updates": for him it does not exist.
    assert client.get("/api/channels/updates/posts", headers=bob).status_code == 404
    assert client.get("/api/channels/nowhere/posts", headers=bob).status_code == 404

    # Only admins change channels; opening one lets everyone read it.
    assert client.put("/api/channels/updates", json={"open": True},
                      headers=bob).status_code == 403
    changed = client.put("/api/channels/updates", headers=admin,
                         json={"open": True, "title": "Team updates"}).json()
    assert (changed["open"], changed["title"], changed["posts"]) == (True, "Team updates", 5)
    bobs = client.get("/api/channels/updates/posts", headers=bob).json()
    assert len(bobs["posts"]) == 5 and all(p["unread"] for p in bobs["posts"])
    created = client.put("/api/channels/ideas", headers=admin, json={"description": "new"})
    assert created.json()["description"] == "new"
    assert client.put("/api/channels/a%2Fb", headers=admin, json={}).status_code in (400, 404)


def test_pages_list_channels_and_posts_escaped(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    publish(engine, message("Lunch <b>Friday</b>", to=["bob@example.com"]), channel="social",
            recipients=["bob@example.com"])
    people.ensure_user(engine, "bob@example.com", password=PASSWORD)
    people.ensure_user(engine, "ann@example.com", password=PASSWORD)
    client = TestClient(create_app(engine))
    assert client.get("/space", follow_redirects=False).status_code == 303  # sign in first
    sign_in(client, "bob@example.com", PASSWORD)
    index = client.get("/space")
    assert index.status_code == 200
    assert 'href="/space/social"' in index.text and 'class="badge"' in index.text
    channel = client.get("/space/social")
    assert channel.status_code == 200
    assert "Lunch &lt;b&gt;Friday&lt;/b&gt;" in channel.text
    assert "<b>Friday</b>" not in channel.text
    client.cookies.clear()
    sign_in(client, "ann@example.com", PASSWORD)
    assert client.get("/space/social").status_code == 404
    assert 'href="/space/social"' not in client.get("/space").text
