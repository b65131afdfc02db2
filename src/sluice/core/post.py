"""What a destination receives for one diverted message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sluice.core.mail import Attachment


@dataclass(frozen=True, slots=True)
class Post:
    """A message as a post: enough to read it where it lands, and a link to the whole.

    `key` makes publication idempotent: one message is posted once per destination.
    """

    key: str  # fingerprint:destination
    destination: str
    fingerprint: str
    message_id: str
    subject: str
    sender: str
    sender_name: str
    category: str
    confidence: float
    received_at: datetime
    excerpt: str
    url: str
    attachments: tuple[Attachment, ...]
    recipients: tuple[str, ...]
    thread_subject: str
    in_reply_to: str
