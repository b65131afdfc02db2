"""A small mailbox the analyzer tests build themselves, with figures worked out by hand.

Rules (`RULES`): mail from news@example.com is diverted; example.com is internal.
Analyzed with the classifier off and `SETTINGS` (storm: 2 replies to 4+ recipients):

message               week      internal deliveries  diverted
m1 news (report.pdf)  2024-W01  a b c          3          3
m2 news (report.pdf)  2024-W02  a b (x ext)    2          2
m3 boss Budget 09:00  2024-W02  a              1          0
m4 boss Budget 09:30  2024-W02  a d            2          0   re-send of m3 (+d)
p1 a Party            2024-W02  a b c d        4          0
r1 b Re: Party        2024-W02  a b c d        4          0
r2 c Re: Party        2024-W02  a b c d        4          0
                                             = 20         5   -> 25.0 %
Skipped: an empty file, a message without recipients, one over the size limit, and a copy
of m3 (same Message-ID) in another folder.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from sluice.reports.analysis import AnalysisSettings

RULES = """\
internal_domains: [example.com]
destinations:
  news: {kind: space, channel: news}
policy:
  - {name: news-out, match: {sender: news@example.com}, action: divert, to: news}
"""
SETTINGS = AnalysisSettings(storm_min_replies=2, storm_min_recipients=4, top=10)
MAX_BYTES = 20_000
REPORT_PDF = b"%PDF-1.4 quarterly report " * 40


def message(sender: str, to: list[str], subject: str, when: datetime, *, body: str = "Hello.",
            message_id: str, attachment: bytes | None = None, cc: tuple[str, ...] = (),
            in_reply_to: str = "") -> bytes:
    headers = [f"From: {sender}", f"To: {', '.join(to)}", f"Subject: {subject}",
               f"Date: {format_datetime(when)}", f"Message-ID: <{message_id}>"]
    if cc:
        headers.append(f"Cc: {', '.join(cc)}")
    if in_reply_to:
        headers.append(f"In-Reply-To: <{in_reply_to}>")
    if attachment is None:
        return ("\r\n".join([*headers, "Content-Type: text/plain; charset=utf-8", "", body, ""])
                ).encode()
    encoded = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
    return ("\r\n".join([
        *headers, "MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b1"', "",
        "--b1", "Content-Type: text/plain; charset=utf-8", "", body, "--b1",
        'Content-Type: application/pdf; name="report.pdf"',
        'Content-Disposition: attachment; filename="report.pdf"',
        "Content-Transfer-Encoding: base64", "", encoded, "--b1--", ""])).encode()


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


A, B, C, D = (f"{n}@example.com" for n in "abcd")
BUDGET = "Please review the budget before Friday."


def good_messages() -> list[bytes]:
    """The seven messages that are counted."""
    return [
        message("news@example.com", [A, B, C], "Weekly news", at(1, 8), message_id="m1@x",
                attachment=REPORT_PDF),
        message("news@example.com", [A, B, "x@ext.org"], "Weekly news 2", at(8, 8),
                message_id="m2@x", attachment=REPORT_PDF),
        message("boss@example.com", [A], "Budget", at(8, 9), body=BUDGET, message_id="m3@x"),
        message("boss@example.com", [A, D], "Budget", at(8, 9, 30), body=BUDGET,
                message_id="m4@x"),
        message(A, [A, B, C, D], "Party", at(9, 10), message_id="p1@x"),
        message(B, [A, B, C, D], "Re: Party", at(9, 11), message_id="r1@x",
                in_reply_to="p1@x", body="Count me in."),
        message(C, [A, B, C, D], "Re: Party", at(9, 12), message_id="r2@x",
                in_reply_to="p1@x", body="Me too."),
    ]


def hostile_messages() -> list[bytes]:
    """Skipped: empty, no recipients, too large (and binary junk without headers)."""
    return [
        b"",
        b"From: z@example.com\r\nSubject: to nobody\r\n\r\nx\r\n",
        message(A, [B], "Huge", at(10, 9), message_id="huge@x", body="y" * (MAX_BYTES + 10)),
    ]


def duplicate_of_m3() -> bytes:
    return good_messages()[2]


def pdf_size() -> int:
    return len(REPORT_PDF)


def write_maildir(root: Path, messages: list[bytes], folder: str = "") -> Path:
    """Messages as maildir files (in new/); `folder` makes a Maildir++ sub-folder `.folder`."""
    target = root / f".{folder}" if folder else root
    for sub in ("cur", "new", "tmp"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    for index, raw in enumerate(messages):
        (target / "new" / f"1700000000.M{index}P1.test").write_bytes(raw)
    return root


def fixture_maildir(root: Path) -> Path:
    """The whole fixture: good and hostile messages in INBOX, the duplicate in `Archive`."""
    write_maildir(root, good_messages() + hostile_messages())
    return write_maildir(root, [duplicate_of_m3()], folder="Archive")
