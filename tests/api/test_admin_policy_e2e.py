"""End to end in Chromium: an admin previews a policy in the editor (admin.js), sees a
refused one's problems, saves one, sees it in force and in the change list, and hands the
policy back to the rules file (screenshot as an artifact)."""

from __future__ import annotations

from typing import Any

from sluice.api import people
from sluice.api.myrules import base_rules
from tests.browser import WebServer, artifact_path, sign_in

PASSWORD = "e2e admin policy password"
ADMIN = "e2e-policy-admin@example.com"
#: Deliver-only rules: they post nothing, so they cannot clash with other tests' rules on
#: the shared server.
POLICY = ("- {name: e2e-keep-invites, match: {category: event}, action: deliver}\n"
          "- {name: e2e-keep-partner, match: {sender_domain: partner.example}, "
          "action: deliver, mode: audit}\n")


def test_admin_edits_previews_saves_and_restores_the_policy(web_server: WebServer,
                                                            page: Any) -> None:
    people.ensure_user(web_server.engine, ADMIN, role="admin", password=PASSWORD)
    base = web_server.base_url
    file_policy = [r.name for r in base_rules(web_server.engine, web_server.settings).policy]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, base, ADMIN, PASSWORD)
    page.goto(f"{base}/admin")
    assert "policy of the rules file" in page.inner_text("#policy-source")

    page.fill("#policy-yaml", "- {match: {}, action: divert, to: nowhere}\n")
    page.click("button[data-policy=preview]")
    page.wait_for_selector("#policy-status .notice.error")
    assert "unknown destination 'nowhere'" in page.inner_text("#policy-status")

    page.fill("#policy-yaml", POLICY)
    page.click("button[data-policy=preview]")
    page.wait_for_selector("#policy-preview:not([hidden])")
    assert "nothing saved yet" in page.inner_text("#policy-status")
    rows = page.locator("#policy-preview tbody tr").all_inner_texts()
    assert [row.split("\t")[0] for row in rows] == ["e2e-keep-invites", "e2e-keep-partner"]
    assert "audit" in rows[1]

    with page.expect_navigation():
        page.click("button[data-policy=save]")
    assert "Policy saved" in page.inner_text("[role=status]")
    assert "the policy saved here" in page.inner_text("#policy-source")
    assert page.locator("#policy tr", has_text="e2e-keep-invites").count() == 1
    change = page.locator("#rule-changes tr", has_text="organisation policy").first
    assert ADMIN in change.inner_text() and "e2e-keep-partner" in change.inner_text()
    assert [r.name for r in base_rules(web_server.engine, web_server.settings).policy] == [
        "e2e-keep-invites", "e2e-keep-partner"]
    shot = artifact_path("e2e-admin-policy.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    page.on("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("button[data-policy=restore]")
    assert "policy of the rules file" in page.inner_text("#policy-source")
    assert [r.name for r in base_rules(web_server.engine, web_server.settings).policy] == (
        file_policy)
    assert errors == []
