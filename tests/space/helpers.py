"""Publishing real MIME messages into the space the way the outbox worker does: the raw
message as a blob row, then `SpaceDestination.publish_in` inside one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import Engine

from sluice.core.db import init_schema, insert_ignoring_conflicts, make_engine
from sluice.core.parse import parse
from sluice.core.settings import load_settings
from sluice.core.tables_router import Blob
from sluice.router.blobs import blob_row
from sluice.router.destinations import Published, SpaceDestination
from sluice.router.post import build_post
from sluice.space.viewer import ADMIN, Viewer

BASE_URL = "http://space.test"
ANN, BOB, CEM, EVE = (Viewer("ann@example.com"), Viewer("bob@example.com"),
                      Viewer("cem@example.com"), Viewer("eve@example.com"))
ADMIN_VIEWER = Viewer("root@example.com", role=ADMIN)


def space_engine(tmp_path: Path) -> Engine:
    engine = make_engine(load_settings(None, data_dir=tmp_path / "data"))
    init_schema(engine)
    return engine


def message(subject: str, *, sender: str = "boss@example.com",
            to: Sequence[str] = ("ann@example.com",), cc: Sequence[str] = (),
            text: str = "Hello team.", html: str = "", message_id: str = "",
            in_reply_to: str = "", references: Sequence[str] = (),
            files: Sequence[tuple[str, str, bytes]] = (),
            inline: Sequence[tuple[str, str, bytes]] = (),
            date: datetime | None = None) -> bytes:
    """A real MIME message: text (and HTML) body, attachments (name, type, bytes), inline
    images (content-id, type, bytes) related to the HTML body."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2024, 3, 1, 9, 0, tzinfo=UTC))
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
        html_part = msg.get_payload()[1]  # type: ignore[index]
        for cid, ctype, data in inline:
            maintype, subtype = ctype.split("/")
            html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>")
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def publish(engine: Engine, raw: bytes, *, channel: str = "news",
            recipients: Sequence[str] = ("ann@example.com",), fingerprint: str = "",
            received_at: datetime | None = None) -> Published:
    """What the outbox does for a space destination: blob row (written by the gateway),
    then publish_in within one transaction."""
    fingerprint = fingerprint or hashlib.sha256(raw + "|".join(recipients).encode()).hexdigest()
    post = build_post(parse(raw), None, destination="space-dest", fingerprint=fingerprint,
                      recipients=tuple(recipients), base_url=BASE_URL, received_at=received_at)
    row = blob_row(raw)
    destination = SpaceDestination("space-dest", channel, engine)
    with engine.begin() as conn:
        insert_ignoring_conflicts(conn, Blob.__table__, [row], ["sha256"])  # type: ignore[attr-defined]
        return destination.publish_in(conn, post, row["sha256"])


def post_id_of(published: Published) -> int:
    return int(published.link.rsplit("/", 1)[1].split("#")[0])


def bearer(engine: Engine, email: str, role: str = "member") -> dict[str, str]:
    """Headers of an API client signed in as `email` (an account and a token for it)."""
    from sluice.api import people

    people.ensure_user(engine, email, role=role)
    return {"Authorization": f"Bearer {people.issue_token(engine, email, 'tests')}"}
