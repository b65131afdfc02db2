"""End to end in Chromium: mail diverted by the real gateway and outbox, then read in the
browser — sign in, open the channel, read the post, react, comment; screenshot saved."""

from __future__ import annotations

import smtplib
from pathlib import Path
from typing import Any

from sluice.api import people
from tests.browser import WebServer, artifact_path, sign_in
from tests.servers import GatewayThread, SmtpSink, gateway_settings
from tests.space.helpers import message
from tests.space.test_gateway_publish import jobs_done, rules

PASSWORD = "e2e space password"
TEAM = ["ann@example.com", "bob@example.com", "cem@example.com"]


def test_read_a_diverted_post_and_comment_in_the_browser(
        tmp_path: Path, clean_sink: SmtpSink, page: Any) -> None:
    settings = gateway_settings(tmp_path, rules_file=rules(tmp_path), classify=False,
                                upstream=clean_sink.address)
    gw = GatewayThread(settings, None)
    try:
        mail = message("[launch] Price list <2025>", sender="Boss <boss@example.com>", to=TEAM,
                       html="<h2>New prices</h2><p onclick=\"alert(1)\">Valid from May.</p>"
                            "<img src=\"https://tracker.example/open.gif\" alt=\"tracker\">"
                            "<script>document.title='owned'</script>")
        with smtplib.SMTP("127.0.0.1", gw.port) as client:
            assert client.sendmail("boss@example.com", TEAM, mail) == {}
        jobs_done(settings.data_dir / "sluice.db", 1)
    finally:
        gw.stop()

    web = WebServer(settings)
    try:
        people.ensure_user(web.engine, "bob@example.com", password=PASSWORD, name="Bob")
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(page, web.base_url, "bob@example.com", PASSWORD)
        page.goto(f"{web.base_url}/space")
        channel = page.locator("li.channel", has_text="launch")
        assert channel.locator(".badge").inner_text() == "1"
        channel.locator("a").click()
        page.locator("a.subject", has_text="Price list <2025>").click()
        page.wait_for_selector("article.post[data-read=true]")  # opening marks it read
        assert page.locator("h1").inner_text() == "[launch] Price list <2025>"
        assert "Valid from May." in page.locator(".mail-body").inner_text()
        assert page.title() != "owned"
        image = page.locator(".mail-body img")
        assert image.get_attribute("src") is None  # the tracker is not loaded
        assert page.locator("#show-images").is_visible()

        page.locator("button.reaction[data-emoji=thumbsup]").click()
        page.wait_for_selector("button.reaction[data-emoji=thumbsup][aria-pressed=true]")
        assert page.locator("button.reaction[data-emoji=thumbsup] .count").inner_text() == "1"
        page.fill("#comment-body", "Thanks <b>boss</b>, forwarded to the partners.")
        page.locator("#comment-form button[type=submit]").click()
        comment = page.locator(".comment", has_text="forwarded to the partners")
        comment.wait_for()
        assert "Thanks <b>boss</b>" in comment.locator(".comment-body").inner_text()
        assert "Bob" in comment.inner_text()
        assert dialogs == []
        shot = artifact_path("e2e-space-post.png")
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        page.goto(f"{web.base_url}/space")
        assert page.locator("li.channel", has_text="launch").locator(".badge").count() == 0
    finally:
        web.stop()
