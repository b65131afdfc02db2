"""Daily digests: one mail per user listing what was diverted for them, with links.

Digests are marked `X-Sluice-Generated: digest` and `Auto-Submitted: auto-generated`, so the
rules never divert them (router.decide checks the header) and vacation responders stay quiet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sluice.core.mail import GENERATED_HEADER


@dataclass(frozen=True, slots=True)
class DigestEntry:
    subject: str
    sender: str
    destination: str
    url: str
    created_at: datetime


def build_digest(user: str, entries: Sequence[DigestEntry], *, hostname: str,
                 now: datetime) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sluice digest <sluice@{hostname}>"
    msg["To"] = user
    msg["Subject"] = (f"Your Sluice digest: {len(entries)} "
                      f"item{'s' if len(entries) != 1 else ''} moved out of your inbox")
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=hostname)
    msg["Auto-Submitted"] = "auto-generated"
    msg[GENERATED_HEADER] = "digest"
    lines = ["These messages went to their shared place instead of your inbox:", ""]
    by_destination: dict[str, list[DigestEntry]] = {}
    for entry in entries:
        by_destination.setdefault(entry.destination, []).append(entry)
    for destination, items in sorted(by_destination.items()):
        lines.append(f"{destination} ({len(items)})")
        for item in items:
            lines.append(f"  - {item.subject} — from {item.sender}, "
                         f"{item.created_at:%a %d %b %H:%M}")
            lines.append(f"    {item.url}")
        lines.append("")
    lines.append("Change where your mail goes on your rules page, or reply-all less. :-)")
    msg.set_content("\n".join(lines))
    return msg.as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


def next_digest_time(now: datetime, at: time) -> datetime:
    """The next moment of the daily digest time (in now's time zone)."""
    candidate = now.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)
