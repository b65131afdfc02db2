"""The search API and page: only visible posts, escaped snippets, 400 for a query with
nothing to search for — never a 500 whatever the input."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from sluice.api import people
from sluice.api.app import create_app
from sluice.space.posts import add_comment
from sluice.space.viewer import Viewer
from tests.space.helpers import bearer, message, post_id_of, publish, space_engine
from tests.webauth import sign_in

PASSWORD = "correct horse battery"


def test_search_finds_only_what_the_viewer_may_see(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    client = TestClient(create_app(engine))
    ann, bob = bearer(engine, "ann@example.com"), bearer(engine, "bob@example.com")
    secret = post_id_of(publish(engine, message(
        "Reorganisation", to=["ann@example.com"], text="The <b>merger</b> is confidential.",
        files=[("merger-plan.pdf", "application/pdf", b"%PDF")]),
        channel="board", recipients=["ann@example.com"]))
    open_post = post_id_of(publish(engine, message("Picnic", to=["bob@example.com"],
                                                   text="Bring a blanket."),
                                   channel="social", recipients=["bob@example.com",
                                                                 "ann@example.com"]))
    comment = add_comment(engine, Viewer("bob@example.com"), open_post, "merger rumours?")

    found = client.get("/api/search", params={"q": "merger"}, headers=ann).json()
    by_post = {(h["post_id"], h["comment_id"]) for h in found["hits"]}
    assert by_post == {(secret, None), (open_post, comment.id)}
    hit = next(h for h in found["hits"] if h["post_id"] == secret)
    assert hit["url"] == f"/space/board/{secret}"
    assert "<mark>merger</mark>" in hit["snippet_html"]
    assert "<b>" not in hit["snippet_html"] and "&lt;b&gt;" in hit["snippet_html"]

    bobs = client.get("/api/search", params={"q": "merger"}, headers=bob).json()["hits"]
    assert [(h["post_id"], h["url"]) for h in bobs] == [
        (open_post, f"/space/social/{open_post}#comment-{comment.id}")]
    for query in ("merger-plan.pdf", "reorganis*", "confidential"):
        assert client.get("/api/search", params={"q": query},
                          headers=bob).json()["hits"] == [], query
    assert [h["post_id"] for h in client.get(
        "/api/search", params={"q": "merger", "channel": "board"},
        headers=ann).json()["hits"]] == [secret]


def test_bad_queries_are_400_with_a_reason(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    client = TestClient(create_app(engine))
    ann = bearer(engine, "ann@example.com")
    publish(engine, message("x"))
    for query in ('"', "(", "*", "NEAR(", "-", "a AND", "' OR 1=1 --", "\\", "^"):
        response = client.get("/api/search", params={"q": query}, headers=ann)
        assert response.status_code in (200, 400), (query, response.text)
        if response.status_code == 400:
            assert "no words" in response.json()["detail"]
    assert client.get("/api/search", params={"q": ""}, headers=ann).status_code == 422
    assert client.get("/api/search", params={"q": "x" * 201},
                      headers=ann).status_code == 422


def test_search_page(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    publish(engine, message("Budget <2025>", to=["ann@example.com"], text="travel budget"),
            recipients=["ann@example.com"])
    people.ensure_user(engine, "ann@example.com", password=PASSWORD)
    client = TestClient(create_app(engine))
    sign_in(client, "ann@example.com", PASSWORD)
    page = client.get("/search", params={"q": "travel"})
    assert page.status_code == 200
    assert "Budget &lt;2025&gt;" in page.text and "<mark>travel</mark>" in page.text
    bad = client.get("/search", params={"q": "((("})
    assert bad.status_code == 400 and "no words" in bad.text
    assert client.get("/search").status_code == 200
