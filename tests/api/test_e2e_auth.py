"""End to end in Chromium: sign in through the form, see the signed-in page, sign out."""

from __future__ import annotations

from typing import Any

from sluice.api import people
from tests.browser import WebServer, artifact_path, sign_in

PASSWORD = "e2e password one"


def test_sign_in_and_out_in_the_browser(web_server: WebServer, page: Any) -> None:
    people.ensure_user(web_server.engine, "e2e-signin@example.com", password=PASSWORD,
                       name="Erin")
    sign_in(page, web_server.base_url, "e2e-signin@example.com", PASSWORD)
    page.goto(f"{web_server.base_url}/login")  # signed in: sent on
    assert "/login" not in page.url
    shot = artifact_path("e2e-signed-in.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
