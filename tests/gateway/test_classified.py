"""Every recorded message carries its verdict (the gateway's default pipeline hook)."""

from __future__ import annotations

import smtplib
import sqlite3
from pathlib import Path

from sluice.core.verdict import CATEGORIES
from sluice.gateway.wiring import default_hook
from tests.gateway.conftest import StartGateway
from tests.servers import SmtpSink, gateway_settings

MESSAGE = (b"From: Ben <ben@example.com>\r\nTo: team@example.com\r\n"
           b"Subject: Pitch deck v4 - latest version attached\r\nMessage-ID: <deck@x>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nHi all, attached is the latest version "
           b"of the deck. Please use this one from now on.\r\n"
           b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
           b"filename=deck-v4.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
           b"--b--\r\n")


def test_recorded_message_carries_the_verdict_and_its_reasons(
        start_gateway: StartGateway, clean_sink: SmtpSink, tmp_path: Path) -> None:
    hook = default_hook(gateway_settings(tmp_path))
    gw = start_gateway(hook=hook, upstream=clean_sink.address)
    with smtplib.SMTP("127.0.0.1", gw.port) as client:
        client.sendmail("ben@example.com", ["ann@example.com"], MESSAGE)
    (relayed,) = clean_sink.wait_for(1)
    assert relayed.content.endswith(MESSAGE.replace(b"\r\n", b"\n"))  # unchanged
    db = sqlite3.connect(tmp_path / "data" / "sluice.db")
    category, confidence, reasons, version = db.execute(
        "select category, confidence, reasons, model_version from message").fetchone()
    assert category in CATEGORIES
    assert 0.0 < confidence <= 1.0
    assert reasons and all(line.strip() for line in reasons.splitlines())
    assert version


def test_no_classify_setting_relays_without_a_verdict(tmp_path: Path) -> None:
    from sluice.gateway.pipeline import deliver_everything

    assert default_hook(gateway_settings(tmp_path, classify=False)) is deliver_everything
