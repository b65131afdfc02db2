"""End to end in Chromium: sign in through the form, change a rule on /me/rules (with its
preview), screenshot the page, sign out."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from sluice.api import people
from sluice.api.myrules import current_rules
from sluice.core.tables import MessageRecord, RecipientOutcome
from tests.browser import WebServer, artifact_path, sign_in

PASSWORD = "e2e password one"
USER = "e2e-rules@example.com"


def _record(server: WebServer, sender: str, subject: str, n: int) -> None:
    """Messages to USER as the gateway records them (facts only)."""
    with Session(server.engine) as session:
        for i in range(n):
            message = MessageRecord(fingerprint=f"{USER}-{sender}-{i}".ljust(64, "0")[:64],
                                    header_from=sender, mail_from=sender,
                                    subject=f"{subject} {i}", to_count=1)
            session.add(message)
            session.flush()
            session.add(RecipientOutcome(message_pk=message.id or 0, recipient=USER,
                                         status="delivered"))
        session.commit()


def test_sign_in_change_a_rule_and_sign_out(web_server: WebServer, page: Any) -> None:
    people.ensure_user(web_server.engine, USER, password=PASSWORD, name="Erin")
    _record(web_server, "news@vendor.example", "Vendor news", 3)
    _record(web_server, "boss@example.com", "Plans", 2)
    base = web_server.base_url

    sign_in(page, base, USER, PASSWORD)
    page.goto(f"{base}/me/rules")
    assert page.locator("header .user").inner_text() == "Erin"
    page.fill("textarea[name=rules_yaml]", "- {name: vendor-news, match: "
              "{sender_domain: vendor.example}, action: divert, to: updates}\n")
    with page.expect_navigation():
        page.click("button[value=save]")
    assert "Saved." in page.inner_text("main")
    row = page.locator("#preview tr", has_text="vendor-news").inner_text()
    assert "3 of your last 30 days' 5 mails" in row
    assert [r.name for r in current_rules(web_server.engine, web_server.settings, USER)] == [
        "vendor-news"]
    saved = artifact_path("e2e-my-rules-saved.png")
    page.screenshot(path=str(saved), full_page=True)
    print(f"screenshot: {saved}")

    page.fill("textarea[name=rules_yaml]", "- {match: {}, action: divert, to: nowhere}\n")
    with page.expect_navigation():
        page.click("button[value=save]")
    assert "unknown destination 'nowhere'" in page.inner_text("[role=alert]")

    shot = artifact_path("e2e-my-rules-refused.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    with page.expect_navigation():
        page.click("text=Sign out")
    assert page.url.startswith(f"{base}/login")
    page.goto(f"{base}/me/rules")
    assert page.url.startswith(f"{base}/login?next=/me/rules")
