"""Real-looking messages for the router tests: built with EmailMessage, parsed like the gateway."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from sluice.core.mail import Envelope, Mail
from sluice.core.parse import normalize_line_endings, parse
from sluice.core.verdict import Verdict

DATA = Path(__file__).parent / "data"
ISSUE_EXAMPLE = DATA / "issue4.yaml"


def message(*, sender: str = "News Desk <news@vendor.example>",
            to: tuple[str, ...] = ("alice@example.com",), cc: tuple[str, ...] = (),
            rcpts: tuple[str, ...] | None = None, subject: str = "Quarterly update",
            attachment: bool = False, headers: dict[str, str] | None = None) -> Mail:
    """A parsed message; the envelope recipients default to the header recipients."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Message-ID"] = "<m1@vendor.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content("Hello,\n\nplease find the latest figures below.\n")
    if attachment:
        msg.add_attachment(b"%PDF-1.4 figures", maintype="application", subtype="pdf",
                           filename="figures.pdf")
    envelope = Envelope(mail_from="bounce@vendor.example",
                        rcpt_tos=rcpts if rcpts is not None else to + cc)
    return parse(normalize_line_endings(msg.as_bytes()), envelope)


def verdict(category: str, confidence: float = 0.9) -> Verdict:
    return Verdict(category, confidence, (f"looks like {category}",), "test-1")
