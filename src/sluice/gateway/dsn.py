"""Delivery status notifications (RFC 3464) for recipients the upstream refused for good.

Needed only in SMTP mode: one DATA reply cannot say "delivered to A, refused for B", so
the gateway accepts the message for A and tells the sender about B, as an MTA must.
LMTP answers per recipient and needs none of this.
"""

from __future__ import annotations

from email.utils import formatdate, make_msgid

from sluice.core.mail import GENERATED_HEADER
from sluice.gateway.reply import Reply


def build_dsn(*, hostname: str, sender: str, original: bytes,
              failed: dict[str, Reply]) -> bytes:
    header_end = original.find(b"\r\n\r\n")
    original_headers = original[: header_end + 2] if header_end >= 0 else original[:65536]
    message_id = make_msgid(domain=hostname)
    boundary = "sluice-dsn-" + message_id.strip("<>").split("@")[0]
    explanation = [
        f"This is the mail system at host {hostname}.",
        "",
        "Your message could not be delivered to one or more recipients:",
        "",
        *(f"<{rcpt}>: {reply}" for rcpt, reply in failed.items()),
    ]
    status_blocks = [
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\n"
        f"Status: {_status(reply)}\r\nDiagnostic-Code: smtp; {reply}\r\n"
        for rcpt, reply in failed.items()
    ]
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
        f"To: <{sender}>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {formatdate(localtime=False)}\r\n"
        f"Message-ID: {message_id}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        f"{GENERATED_HEADER}: dsn\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + "\r\n".join(explanation) + "\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {hostname}\r\n\r\n"
        + "\r\n".join(status_blocks) + "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
    )
    return head.encode("utf-8", "replace") + original_headers + f"\r\n--{boundary}--\r\n".encode()


def _status(reply: Reply) -> str:
    first = reply.text.split(" ", 1)[0]
    return first if first[:1] in "45" and first.count(".") == 2 else f"{reply.code // 100}.0.0"
