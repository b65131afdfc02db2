"""Sign-in, sessions, CSRF, rate limit, API tokens and the trusted proxy header."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from sluice.api import people
from sluice.api.app import create_app
from sluice.api.auth import SESSION_COOKIE, PageViewerDep
from sluice.core.db import init_schema, make_engine
from sluice.core.settings import Settings, load_settings
from sluice.core.tables_people import UserAccount, WebSession
from tests.webauth import login_form_token, sign_in

PASSWORD = "correct horse battery"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(None, data_dir=tmp_path / "data", **overrides)


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(_settings(tmp_path))
    init_schema(engine)
    people.ensure_user(engine, "ann@example.com", password=PASSWORD, name="Ann")
    people.ensure_user(engine, "root@example.com", role="admin", password=PASSWORD)
    yield engine
    engine.dispose()


def _app(engine: Engine, settings: Settings | None = None) -> FastAPI:
    app = create_app(engine, settings)

    @app.get("/test-page")
    def page(viewer: PageViewerDep) -> dict[str, str]:
        return {"email": viewer.email}

    @app.post("/test-page")
    def change(viewer: PageViewerDep) -> dict[str, str]:
        return {"changed": viewer.email}

    return app


def test_anonymous_api_is_401_and_pages_redirect(engine: Engine) -> None:
    client = TestClient(_app(engine))
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    page = client.get("/test-page?x=1", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/test-page%3Fx%3D1"


def test_password_sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it(
        engine: Engine) -> None:
    client = TestClient(_app(engine))
    token = client.get("/login")
    assert 'name="csrf_token"' in token.text
    response = client.post("/login", follow_redirects=False, data={
        "email": "ANN@example.com", "password": PASSWORD, "next": "/test-page",
        "csrf_token": login_form_token(client)})
    assert response.status_code == 303
    assert response.headers["location"] == "/test-page"
    cookie = next(v for k, v in response.headers.multi_items()
                  if k == "set-cookie" and v.startswith(SESSION_COOKIE))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert "secure" not in flags  # base_url is not https here
    assert client.get("/test-page").json() == {"email": "ann@example.com"}
    me = client.get("/api/me").json()
    assert (me["email"], me["name"], me["role"]) == ("ann@example.com", "Ann", "member")

    session_id = client.cookies[SESSION_COOKIE]
    with Session(engine) as session:
        stored = [row.id_sha256 for row in session.exec(select(WebSession))]
    assert session_id not in stored and len(stored) == 1  # only its hash is kept

    assert client.post("/logout", follow_redirects=False).status_code == 403  # no CSRF
    out = client.post("/logout", data={"csrf_token": me["csrf_token"]},
                      follow_redirects=False)
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    replay = TestClient(_app(engine), cookies={SESSION_COOKIE: session_id})
    assert replay.get("/api/me").status_code == 401  # the old cookie is dead


def test_secure_cookie_when_the_base_url_is_https(engine: Engine, tmp_path: Path) -> None:
    settings = _settings(tmp_path, base_url="https://sluice.example.com")
    client = TestClient(_app(engine, settings), base_url="https://testserver")
    response = client.post("/login", follow_redirects=False, data={
        "email": "ann@example.com", "password": PASSWORD,
        "csrf_token": login_form_token(client)})
    cookie = next(v for k, v in response.headers.multi_items()
                  if k == "set-cookie" and v.startswith(SESSION_COOKIE))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}
    assert (tmp_path / "data" / "web-secret").stat().st_mode & 0o077 == 0


def test_sign_in_form_needs_its_csrf_token(engine: Engine) -> None:
    client = TestClient(_app(engine))
    client.get("/login")
    forged = client.post("/login", data={"email": "ann@example.com", "password": PASSWORD,
                                         "csrf_token": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403
    assert SESSION_COOKIE not in client.cookies
    other = TestClient(_app(engine))  # a token from another browser's cookie does not fit
    stolen = login_form_token(other)
    client.cookies.clear()
    assert client.post("/login", data={"email": "ann@example.com", "password": PASSWORD,
                                       "csrf_token": stolen}).status_code == 403


def test_cookie_requests_that_change_things_need_the_csrf_token(engine: Engine) -> None:
    client = TestClient(_app(engine))
    csrf = sign_in(client, "ann@example.com", PASSWORD)
    assert client.post("/test-page").status_code == 403
    assert client.post("/test-page", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert client.post("/test-page", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.post("/test-page", data={"csrf_token": csrf}).status_code == 200
    assert client.post("/api/tokens", json={"label": "x"}).status_code == 403
    # A bearer token is not sent by browsers on their own: no CSRF token needed.
    token = people.issue_token(engine, "ann@example.com", "script")
    bare = TestClient(_app(engine))
    assert bare.post("/test-page", headers={"Authorization": f"Bearer {token}"}).json() == {
        "changed": "ann@example.com"}


def test_rate_limit_after_failed_sign_ins(engine: Engine, tmp_path: Path) -> None:
    settings = _settings(tmp_path, login_max_failures=3, login_window_seconds=600)
    client = TestClient(_app(engine, settings))

    def attempt(password: str, email: str = "ann@example.com") -> int:
        return client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": login_form_token(client)},
                           follow_redirects=False).status_code

    assert [attempt("wrong password") for _ in range(3)] == [401, 401, 401]
    assert attempt(PASSWORD) == 429  # even the right password, until the window passes
    # The client address is limited too: another account from the same address.
    assert attempt(PASSWORD, "root@example.com") == 429
    response = client.post("/login", data={"email": "ann@example.com", "password": "x",
                                           "csrf_token": login_form_token(client)})
    assert response.headers["retry-after"] == "600"


def test_failures_are_forgiven_by_a_successful_sign_in(engine: Engine, tmp_path: Path) -> None:
    settings = _settings(tmp_path, login_max_failures=3)
    client = TestClient(_app(engine, settings))
    for _ in range(2):
        client.post("/login", data={"email": "ann@example.com", "password": "nope-nope",
                                    "csrf_token": login_form_token(client)})
    sign_in(client, "ann@example.com", PASSWORD)
    assert client.get("/api/me").status_code == 200


def test_passwords_are_argon2id_hashes(engine: Engine) -> None:
    with Session(engine) as session:
        user = session.exec(select(UserAccount).where(
            UserAccount.email == "ann@example.com")).one()
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert people.verify_password(engine, "ann@example.com", PASSWORD) is not None
    assert people.verify_password(engine, "ann@example.com", PASSWORD + "x") is None
    assert people.verify_password(engine, "nobody@example.com", PASSWORD) is None
    with pytest.raises(people.PeopleError, match="at least"):
        people.set_password(engine, "ann@example.com", "short")


def test_api_tokens_created_listed_and_revoked(engine: Engine) -> None:
    client = TestClient(_app(engine))
    first = people.issue_token(engine, "ann@example.com", "cli")
    auth = {"Authorization": f"Bearer {first}"}
    created = client.post("/api/tokens", json={"label": "nightly"}, headers=auth)
    assert created.status_code == 201
    second = created.json()["token"]
    listed = client.get("/api/tokens", headers=auth).json()
    assert [(t["label"], t["revoked"]) for t in listed] == [("cli", False), ("nightly", False)]
    assert second not in str(listed) and first not in str(listed)

    nightly = listed[1]["id"]
    other = {"Authorization": f"Bearer {people.issue_token(engine, 'root@example.com', 'r')}"}
    assert client.delete(f"/api/tokens/{nightly}", headers=other).status_code == 404
    assert client.delete(f"/api/tokens/{nightly}", headers=auth).status_code == 204
    assert client.get("/api/me", headers={"Authorization": f"Bearer {second}"}
                      ).status_code == 401
    assert client.get("/api/me", headers=auth).status_code == 200
    assert client.get("/api/me", headers={"Authorization": "Bearer sluice_made-up"}
                      ).status_code == 401
    assert client.get("/api/me", headers={"Authorization": f"Basic {first}"}
                      ).status_code == 401


def test_deactivated_account_loses_sessions_and_tokens(engine: Engine) -> None:
    client = TestClient(_app(engine))
    sign_in(client, "ann@example.com", PASSWORD)
    token = people.issue_token(engine, "ann@example.com", "cli")
    people.set_active(engine, "ann@example.com", False)
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 401
    assert people.verify_password(engine, "ann@example.com", PASSWORD) is None


def test_trusted_header_only_when_enabled_and_from_a_trusted_proxy(
        engine: Engine, tmp_path: Path) -> None:
    header = {"X-Remote-User": "root@example.com"}
    off = TestClient(_app(engine, _settings(tmp_path)))
    assert off.get("/api/me", headers=header).status_code == 401
    elsewhere = TestClient(_app(engine, _settings(
        tmp_path, trusted_user_header="X-Remote-User", trusted_proxies=["192.0.2.0/24"])),
        client=("198.51.100.7", 50000))
    assert elsewhere.get("/api/me", headers=header).status_code == 401  # client is not it
    proxied = TestClient(_app(engine, _settings(
        tmp_path, trusted_user_header="X-Remote-User", trusted_proxies=["192.0.2.0/24"])),
        client=("192.0.2.10", 50000))
    assert proxied.get("/api/me", headers=header).json()["email"] == "root@example.com"
    new = proxied.get("/api/me", headers={"X-Remote-User": "New.Person@example.com"}).json()
    assert (new["email"], new["role"]) == ("new.person@example.com", "member")
    # Cookie-like: a request that changes something needs the CSRF token it was given.
    assert proxied.post("/test-page", headers=header).status_code == 403
    csrf = proxied.get("/api/me", headers=header).json()["csrf_token"]
    assert proxied.post("/test-page", headers={**header, "X-CSRF-Token": csrf}
                        ).status_code == 200


def test_security_headers_and_no_open_redirect(engine: Engine) -> None:
    client = TestClient(_app(engine))
    page = client.get("/login")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert client.get("/static/sluice.js").headers["content-type"].startswith(
        "text/javascript")
    response = client.post("/login", follow_redirects=False, data={
        "email": "ann@example.com", "password": PASSWORD, "next": "//evil.example/",
        "csrf_token": login_form_token(client)})
    assert response.headers["location"] == "/"
