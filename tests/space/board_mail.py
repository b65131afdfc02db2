"""Real MIME messages for the board tests (stdlib `email`), published through the space's own
ingest (blob row → parse → post → hooks), as the outbox worker does."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from sqlalchemy import Engine

from sluice.core.db import init_schema, make_engine
from sluice.core.parse import parse
from sluice.core.settings import load_settings
from sluice.core.tables_router import Blob
from sluice.core.verdict import Verdict
from sluice.router.post import build_post
from sluice.space.ingest import ingest

#: A 1x1 PNG: a logo in a signature.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")


def board_engine(tmp_path: Path) -> Engine:
    engine = make_engine(load_settings(None, data_dir=tmp_path / "data"))
    init_schema(engine)
    return engine


def mime(subject: str, *, sender: str = "ann@example.com", to: Sequence[str] = (),
         text: str = "Hello.", files: Sequence[tuple[str, str, bytes]] = (),
         calendar: Sequence[tuple[str, str]] = (), logo: bool = False,
         date: datetime | None = None, message_id: str = "") -> bytes:
    """A message with attachments (name, type, bytes), text/calendar parts (method, text)
    and optionally an inline logo referenced from an HTML body."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2024, 3, 1, 9, 0, tzinfo=UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    msg.set_content(text)
    if logo:
        msg.add_alternative(f"<p>{text}</p><img src=\"cid:logo@example.com\">", subtype="html")
        html = msg.get_payload()[1]
        html.add_related(PNG, maintype="image", subtype="png", cid="<logo@example.com>")
    for method, ics in calendar:
        msg.add_attachment(ics.encode(), maintype="text", subtype="calendar",
                           params={"method": method}, disposition="inline")
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def publish(engine: Engine, raw: bytes, *, category: str, recipients: Sequence[str],
            channel: str = "sales", received_at: datetime | None = None) -> int:
    """Store the raw message as a blob and ingest it as the outbox does; the post's id."""
    sha = hashlib.sha256(raw).hexdigest()
    mail = parse(raw)
    post = build_post(mail, Verdict(category, 0.9, (), "test"), destination=channel,
                      fingerprint=sha, recipients=tuple(recipients),
                      base_url="http://sluice.test",
                      received_at=received_at or datetime.now(UTC))
    with engine.begin() as conn:
        conn.execute(Blob.__table__.insert().prefix_with("OR IGNORE"),  # type: ignore[attr-defined]
                     [{"sha256": sha, "size": len(raw), "data": raw,
                       "created_at": datetime.now(UTC)}])
        done = ingest(conn, channel, post, sha)
    return done.post_id
