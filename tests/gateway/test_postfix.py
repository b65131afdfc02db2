"""Sluice as Postfix's after-queue content filter, against a real Postfix on loopback.

client → Postfix public smtpd → content_filter (smtp or lmtp) → Sluice → Postfix re-injection
smtpd → relayhost (smtp-sink) or Postfix's own virtual delivery. The master.cf lines are the
ones docs/postfix.md shows (tests/postfix.py `DOC_*`).
"""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest

from tests.gateway.conftest import StartGateway
from tests.postfix import (
    DOC_REINJECT_PORT,
    DOC_SLUICE_PORT,
    REJECTED_ON_REINJECTION,
    VIRTUAL_DOMAIN,
    PostfixInstance,
    render_filter_config,
)
from tests.servers import GatewayThread, SmtpSink

DOC = Path(__file__).resolve().parents[2] / "docs" / "postfix.md"


def message(subject: str, to: str = "rcpt@example.com") -> bytes:
    return (f"From: Sender <sender@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.com>\r\n\r\n"
            f"Body of {subject}.\r\n.leading dot\r\n").encode()


def send(port: int, raw: bytes, sender: str = "sender@example.com",
         rcpts: tuple[str, ...] = ("rcpt@example.com",), utf8: bool = False) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        refused = client.sendmail(sender, list(rcpts), raw,
                                  mail_options=["SMTPUTF8"] if utf8 else [])
    assert refused == {}


def start_filter(start_gateway: StartGateway, postfix: PostfixInstance,
                 lmtp: bool) -> GatewayThread:
    """Sluice on the port Postfix's content_filter points at, relaying to re-injection."""
    listen = (f"lmtp://127.0.0.1:{postfix.sluice_lmtp_port}" if lmtp
              else f"127.0.0.1:{postfix.sluice_smtp_port}")
    return start_gateway(listen=[listen], upstream=postfix.reinjection)


def received_by(content: bytes) -> list[str]:
    """The `by ...` part of each Received header, top (last hop) first."""
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", content.split(b"\n\n", 1)[0])
    return [m.group(1).decode() for m in
            re.finditer(rb"^Received: .*? by (\S+ \(\w+\) with \w+)", unfolded, re.M)]


@pytest.mark.postfix
@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_mail_passes_through_sluice_once(clean_postfix: PostfixInstance, clean_sink: SmtpSink,
                                         start_gateway: StartGateway, lmtp: bool) -> None:
    start_filter(start_gateway, clean_postfix, lmtp)
    raw = message(f"via {'lmtp' if lmtp else 'smtp'} filter")
    port = clean_postfix.public_lmtp_port if lmtp else clean_postfix.public_smtp_port
    send(port, raw)

    clean_sink.wait_for(1)
    clean_postfix.wait_until_idle()  # an empty queue: nothing more is on its way
    messages = clean_sink.messages()
    assert len(messages) == 1, clean_postfix.log_tail()
    (delivered,) = messages
    assert delivered.rcpt_tos == ["rcpt@example.com"]
    assert delivered.mail_from == "sender@example.com"
    # Re-injection on top, then Sluice, then the public smtpd that queued it first.
    assert received_by(delivered.content) == [
        "postfix.test (Postfix) with ESMTP",
        f"gw.test (Sluice) with {'LMTP' if lmtp else 'ESMTP'}",
        "postfix.test (Postfix) with ESMTP",
    ]
    assert delivered.content.endswith(raw.replace(b"\r\n", b"\n"))
    transport = "sluice-lmtp/lmtp" if lmtp else "sluice/smtp"
    clean_postfix.wait_for_log(rf"{transport}\[\d+\]: .*relay=127\.0\.0\.1\[127\.0\.0\.1\]"
                               rf":\d+, .*status=sent")


@pytest.mark.postfix
@pytest.mark.parametrize("lmtp", [True, False], ids=["lmtp", "smtp"])
def test_refused_recipient_bounces_and_the_other_gets_one_copy(
        clean_postfix: PostfixInstance, clean_sink: SmtpSink, start_gateway: StartGateway,
        lmtp: bool) -> None:
    """The re-injection port refuses one of two recipients for good. LMTP: Sluice answers that
    recipient 554 and Postfix bounces it. SMTP: one reply per transaction, so Sluice answers
    250 and sends the delivery status notification itself (through re-injection)."""
    start_filter(start_gateway, clean_postfix, lmtp)
    rcpts = ("good@example.com", REJECTED_ON_REINJECTION)
    port = clean_postfix.public_lmtp_port if lmtp else clean_postfix.public_smtp_port
    send(port, message("one refused", to=", ".join(rcpts)), rcpts=rcpts)

    clean_sink.wait_for(2)
    clean_postfix.wait_until_idle()
    messages = clean_sink.messages()
    copies = [m for m in messages if m.mail_from == "sender@example.com"]
    bounces = [m for m in messages if m.mail_from == ""]
    assert [m.rcpt_tos for m in copies] == [["good@example.com"]], clean_postfix.log_tail()
    assert [m.rcpt_tos for m in bounces] == [["sender@example.com"]], clean_postfix.log_tail()
    assert f"<{REJECTED_ON_REINJECTION}>".encode() in bounces[0].content
    assert b"Recipient address rejected" in bounces[0].content  # the re-injection's 554 text
    final_recipients = re.findall(rb"Final-Recipient: rfc822; ?(\S+)", bounces[0].content)
    assert final_recipients == [REJECTED_ON_REINJECTION.encode()]
    log = clean_postfix.log()
    filter_log = "sluice-lmtp/lmtp" if lmtp else "sluice/smtp"
    assert re.search(rf"{filter_log}\[\d+\]: .*to=<good@example\.com>, .*status=sent", log), log
    refused = rf"{filter_log}\[\d+\]: .*to=<{re.escape(REJECTED_ON_REINJECTION)}>, .*"
    if lmtp:
        assert re.search(refused + r"status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] "
                         r"said: 554 5\.7\.1", log), log
        assert re.search(r"/bounce\[\d+\]: .*sender non-delivery notification", log), log
    else:
        assert re.search(refused + "status=sent", log), log
        assert b"(Sluice)" not in bounces[0].content.split(b"\n\n", 1)[0]  # Sluice's own DSN
        assert b"X-Sluice-Generated: dsn" in bounces[0].content


@pytest.mark.postfix
@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_smtputf8_mail_passes_through_sluice(clean_postfix: PostfixInstance,
                                             start_gateway: StartGateway, lmtp: bool) -> None:
    start_filter(start_gateway, clean_postfix, lmtp)
    port = clean_postfix.public_lmtp_port if lmtp else clean_postfix.public_smtp_port
    rcpt = f"müller@{VIRTUAL_DOMAIN}"
    raw = ("From: Jörg <jörg@example.com>\r\n"
           f"To: Müller <{rcpt}>\r\nSubject: Grüße aus Köln\r\n"
           "Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMessage-ID: <utf8@example.com>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nÄpfel und Öl.\r\n").encode()
    send(port, raw, sender="jörg@example.com", rcpts=(rcpt,), utf8=True)

    # Postfix's virtual agent, which needs no SMTPUTF8 downgrade, is the final hop.
    clean_postfix.wait_until_idle()
    mailbox = clean_postfix.virtual_mailbox()
    assert len(mailbox) == 1, clean_postfix.log_tail()
    delivered = mailbox[0].replace(b"\n", b"\r\n")
    assert f"Delivered-To: {rcpt}\r\n".encode() in delivered
    assert b"(Sluice) with " + (b"LMTP" if lmtp else b"ESMTP") in delivered
    assert delivered.endswith(raw)
    log = clean_postfix.log()
    transport = "sluice-lmtp/lmtp" if lmtp else "sluice/smtp"
    assert re.search(rf"{transport}\[\d+\]: .*to=<{rcpt}>, .*status=sent", log), log
    assert re.search(rf"/virtual\[\d+\]: .*to=<{rcpt}>, .*status=sent", log), log


def test_docs_show_the_tested_config() -> None:
    """docs/postfix.md shows, with its ports, the master.cf lines the tests above run."""
    doc = " ".join(DOC.read_text(encoding="utf-8").split())
    for lmtp in (False, True):
        for block in render_filter_config(sluice_port=DOC_SLUICE_PORT,
                                          reinject_port=DOC_REINJECT_PORT, lmtp=lmtp):
            assert " ".join(block.split()) in doc, block
