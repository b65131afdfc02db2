"""The bytes behind a parsed message's attachments and inline images.

`core.parse` records attachments by name, type and sha256 only (it runs on the hot path and
keeps no payloads); the space needs the bytes to store them, so it walks the MIME tree once
more here, on the outbox worker's time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

from sluice.core.mail import Mail
from sluice.core.parse import MAX_PARTS


@dataclass(frozen=True, slots=True)
class InlineImage:
    """An image shown inside the HTML body by its Content-ID (a logo, a signature)."""

    content_id: str  # without angle brackets
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageParts:
    #: Attachment bytes by sha256 (the key `Mail.attachments` names them by).
    attachments: dict[str, bytes]
    inline_images: tuple[InlineImage, ...]


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return b""
    return payload if isinstance(payload, bytes) else b""


def message_parts(mail: Mail) -> MessageParts:
    wanted = {a.sha256 for a in mail.attachments}
    found: dict[str, bytes] = {}
    inline: list[InlineImage] = []
    root = message_from_bytes(mail.raw, policy=compat32)
    for count, part in enumerate(root.walk()):
        if count >= MAX_PARTS:
            break
        if part.is_multipart():
            continue
        content_id = str(part.get("Content-ID") or "").strip().strip("<>").strip()
        disposition = (part.get_content_disposition() or "").lower()
        is_image = part.get_content_maintype() == "image"
        if not (wanted or (is_image and content_id)):
            continue
        data = _payload(part)
        digest = hashlib.sha256(data).hexdigest()
        if digest in wanted:
            found.setdefault(digest, data)
        if is_image and content_id and disposition != "attachment":
            inline.append(InlineImage(content_id, part.get_content_type(), data))
    return MessageParts(found, tuple(inline))
