"""End to end in Chromium: sign in, open the library, download the latest version of a
document, change a feedback item's status on the board; screenshots saved as artifacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sluice.api import people
from tests.browser import WebServer, artifact_path, sign_in
from tests.space.board_mail import mime, publish

PASSWORD = "e2e library password"
PDF = "application/pdf"


def test_download_the_latest_version_in_the_browser(web_server: WebServer, page: Any,
                                                    tmp_path: Path) -> None:
    reader = "e2e-library@example.com"
    people.ensure_user(web_server.engine, reader, password=PASSWORD)
    sent = datetime.now(UTC) - timedelta(days=2)
    for day, (name, data) in enumerate([("Offer template v1.pdf", b"%PDF e2e first"),
                                        ("Offer template v2.pdf", b"%PDF e2e second")]):
        publish(web_server.engine, mime(f"Offer template {day}", sender="e2e-kim@example.com",
                                        files=[(name, PDF, data)]),
                category="material", recipients=[reader], channel="e2e-library",
                received_at=sent + timedelta(days=day))
    sign_in(page, web_server.base_url, reader, PASSWORD)
    page.goto(f"{web_server.base_url}/library?channel=e2e-library")
    document = page.locator("article.document", has_text="Offer template v2.pdf")
    assert document.locator(".tag").first.inner_text() == "version 2"
    with page.expect_download() as info:
        document.locator("a.download").click()
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(str(target))
    assert download.suggested_filename == "Offer template v2.pdf"
    assert target.read_bytes() == b"%PDF e2e second"
    document.locator("summary").click()
    assert "Offer template v1.pdf" in document.locator("table").inner_text()
    shot = artifact_path("e2e-library.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_change_a_feedback_status_on_the_board(web_server: WebServer, page: Any) -> None:
    reader = "e2e-feedback@example.com"
    people.ensure_user(web_server.engine, reader, password=PASSWORD)
    publish(web_server.engine, mime("E2E customer asks for exports",
                                    sender="e2e-lee@customer.example"),
            category="feedback", recipients=[reader], channel="e2e-feedback")
    sign_in(page, web_server.base_url, reader, PASSWORD)
    page.goto(f"{web_server.base_url}/feedback?channel=e2e-feedback")
    item = page.locator("article.item", has_text="E2E customer asks for exports")
    assert item.locator("xpath=ancestor::section").get_attribute("data-status") == "new"
    item.locator("select[name=status]").select_option("planned")
    item.locator("input[name=owner]").fill(reader)
    with page.expect_navigation():
        item.locator("button[type=submit]").click()
    moved = page.locator("section[data-status=planned] article.item",
                         has_text="E2E customer asks for exports")
    assert moved.count() == 1
    assert f"owner {reader}" in moved.inner_text()
    shot = artifact_path("e2e-feedback.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


def test_month_view_and_its_navigation(web_server: WebServer, page: Any) -> None:
    from tests.space.test_calendar import ics, vevent

    reader = "e2e-calendar@example.com"
    people.ensure_user(web_server.engine, reader, password=PASSWORD)
    publish(web_server.engine, mime("E2E launch", calendar=[("REQUEST", ics("REQUEST", vevent(
        "e2e-launch@example.com", 0, "DTSTART:20240705T120000Z", "DTEND:20240705T130000Z",
        summary="E2E launch")))]), category="event", recipients=[reader],
        channel="e2e-calendar")
    sign_in(page, web_server.base_url, reader, PASSWORD)
    page.goto(f"{web_server.base_url}/calendar?month=2024-06&channel=e2e-calendar")
    page.click("a[rel=next]")
    page.wait_for_load_state()
    assert "month=2024-07" in page.url and "channel=e2e-calendar" in page.url
    cell = page.locator('td[data-day="2024-07-05"]')
    assert "12:00 E2E launch" in " ".join(cell.inner_text().split())
    shot = artifact_path("e2e-calendar.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
