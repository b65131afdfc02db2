"""A one-time note to the sender of a diverted broadcast: where such mail lives now.

People learn the new place from the first diverted message instead of wondering why nobody
reads their cc-to-all mail. Each sender hears it once per destination.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sluice.core.mail import GENERATED_HEADER
from sluice.core.post import Post


def build_sender_note(post: Post, *, hostname: str, now: datetime) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Sluice <sluice@{hostname}>"
    msg["To"] = post.sender
    msg["Subject"] = f"Your message \"{post.subject}\" now lives in {post.destination}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=hostname)
    msg["Auto-Submitted"] = "auto-generated"
    msg[GENERATED_HEADER] = "sender-note"
    msg.set_content(
        f"Hello,\n\nsome recipients of your message \"{post.subject}\" read this kind of mail "
        f"in {post.destination} instead of their inbox, so it was posted there:\n\n"
        f"  {post.url}\n\nNext time you can post such news there directly; everyone who "
        "follows it will see it. You get this note once.\n")
    return msg.as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
