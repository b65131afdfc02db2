"""The parsed message: one immutable value handed from parse to every later stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: Marks mail Sluice writes itself (DSNs, digests, notes): the rules never divert it.
GENERATED_HEADER = "X-Sluice-Generated"


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the SMTP/LMTP client said, as opposed to what the headers claim."""

    mail_from: str  # "" is the null sender <>
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...] = ()
    smtp_utf8: bool = False


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file carried by the message; inline images (logos, signatures) are not attachments."""

    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class CalendarPart:
    """A text/calendar part as sent (iCalendar text), with its METHOD when present."""

    method: str
    text: str


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """What ties a message to its thread even when In-Reply-To was stripped."""

    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    normalized_subject: str
    reply_depth: int


@dataclass(frozen=True, slots=True)
class Mail:
    """A message as every stage after parsing sees it.

    `raw` keeps the exact bytes received (line endings normalised to CRLF) so that mail
    that stays mail can be relayed byte for byte.
    """

    envelope: Envelope
    raw: bytes
    message_id: str
    subject: str
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    date: datetime | None
    thread: ThreadKeys
    list_id: str
    precedence: str
    auto_submitted: str
    headers: tuple[tuple[str, str], ...]
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()
    inline_images: int = 0
    calendar: tuple[CalendarPart, ...] = ()
    defects: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def header_recipients(self) -> tuple[str, ...]:
        return self.to + self.cc

    def header(self, name: str) -> str:
        """First value of a header (case-insensitive), "" when absent."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return ""
