"""The dashboard in Chromium: an admin signs in and sees the figures and rendered charts;
a member sees their own; no Content-Security-Policy violation; screenshot saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sluice.api.people import ensure_user
from tests.browser import WebServer, artifact_path, sign_in
from tests.reports.scenario import record_scenario

PASSWORD = "a long dashboard passphrase"


def test_admin_and_member_dashboards(tmp_path: Path, page: Any) -> None:
    recorded = record_scenario(tmp_path)
    ensure_user(recorded.engine, "chief@example.com", role="admin", password=PASSWORD)
    ensure_user(recorded.engine, "ann@example.com", password=PASSWORD)
    recorded.engine.dispose()
    web = WebServer(recorded.settings)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        sign_in(page, web.base_url, "chief@example.com", PASSWORD)
        page.goto(f"{web.base_url}/dashboard")
        page.wait_for_load_state("networkidle")
        assert page.title().startswith("Dashboard")
        assert "40.0%" in page.inner_text(".cards")
        images = page.locator(".charts img")
        assert images.count() == 5
        widths = page.eval_on_selector_all(".charts img", "els => els.map(e => e.naturalWidth)")
        assert all(width > 0 for width in widths), widths  # every SVG loaded and decoded
        assert "Per person" in page.inner_text("main")
        shot = artifact_path("dashboard-admin.png")
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        # The export link downloads the CSV of the same figures.
        with page.expect_download() as download:
            page.click("text=CSV")
        assert download.value.suggested_filename.endswith(".csv")
        page.goto(f"{web.base_url}/dashboard?bucket=week&days=14")
        assert page.locator(".charts img").count() == 5
        page.context.clear_cookies()
        sign_in(page, web.base_url, "ann@example.com", PASSWORD)
        page.goto(f"{web.base_url}/dashboard")
        text = page.inner_text("main")
        assert "Your figures" in text and "bob@example.com" not in text
    finally:
        web.stop()
    assert not [p for p in problems if "Content Security Policy" in p], problems
