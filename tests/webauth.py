"""Signing a FastAPI TestClient in, as a browser does (sign-in form, cookie, CSRF token).

For API tests a bearer token is simpler: `people.issue_token(engine, email, "test")` and
`headers={"Authorization": f"Bearer {token}"}`.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

_HIDDEN = re.compile(r'name="csrf_token" value="([^"]*)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def login_form_token(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200, page.text
    found = _HIDDEN.search(page.text)
    assert found, "the sign-in page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str) -> str:
    """Sign in through the form; returns the session's CSRF token (for X-CSRF-Token)."""
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": login_form_token(client)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    me = client.get("/api/me")
    assert me.status_code == 200, me.text
    return str(me.json()["csrf_token"])


def page_csrf_token(client: TestClient, path: str) -> str:
    """The CSRF token a signed-in page carries in its <meta name="csrf-token">."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = _META.search(page.text)
    assert found and found.group(1), f"{path} carries no CSRF token"
    return found.group(1)
