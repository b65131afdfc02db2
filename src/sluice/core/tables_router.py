"""Tables of the diversion path: the outbox, digests, sender notes and blobs (the shared
space's posts live in `tables_space`)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from sluice.core.tables import utcnow

#: Outbox job states. pending → done | fallback (the original mail went to the recipients)
#: | failed (mail out of the space that could not be handed on before its deadline).
PENDING, DONE, FALLBACK, FAILED = "pending", "done", "fallback", "failed"
#: The destination name of outbox jobs that are mail to send (comments written in the space
#: for the thread's mail participants, "send me this as mail"): the job's blob is the
#: complete message, its recipients get it through the upstream relay.
MAIL_OUT = "@mail"


class OutboxJob(SQLModel, table=True):
    """One post to publish, written in the same transaction that lets the gateway say 250."""

    __tablename__ = "outbox_job"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=400)  # fingerprint:destination
    destination: str = Field(index=True, max_length=200)
    fingerprint: str = Field(index=True, max_length=64)
    post_json: str = Field(sa_column=Column(Text, nullable=False))
    raw_sha256: str = Field(max_length=64)
    #: The diverted recipients, newline-separated: they get the mail if the post fails.
    recipients: str = Field(sa_column=Column(Text, nullable=False))
    mail_from: str = Field(default="", max_length=512)
    state: str = Field(default=PENDING, index=True, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    deadline_at: datetime
    claimed_until: datetime | None = None
    last_error: str = Field(default="", max_length=1024)
    created_at: datetime = Field(default_factory=utcnow)
    done_at: datetime | None = None
    link: str = Field(default="", max_length=1024)


class DigestItem(SQLModel, table=True):
    """A diverted message a user gets listed in their next daily digest."""

    __tablename__ = "digest_item"
    __table_args__ = (UniqueConstraint("user", "fingerprint"),)

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(index=True, max_length=512)
    fingerprint: str = Field(max_length=64)
    destination: str = Field(default="", max_length=200)
    subject: str = ""
    sender: str = Field(default="", max_length=512)
    url: str = Field(default="", max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    sent_at: datetime | None = Field(default=None, index=True)


class SenderNote(SQLModel, table=True):
    """A sender was told once where their diverted broadcasts now go."""

    __tablename__ = "sender_note"
    __table_args__ = (UniqueConstraint("sender", "destination"),)

    id: int | None = Field(default=None, primary_key=True)
    sender: str = Field(max_length=512)
    destination: str = Field(max_length=200)
    sent_at: datetime = Field(default_factory=utcnow)


class Blob(SQLModel, table=True):
    """Content-addressed bytes (raw diverted messages): stored once, in the database, so the
    commit that acknowledges a message also makes its content durable and every node that
    shares the database can read it."""

    __tablename__ = "blob"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


def blob_row(data: bytes, now: datetime | None = None, *, sha256: str = "") -> dict[str, Any]:
    """The row that stores `data` (insert it ignoring conflicts: it may exist already).
    `sha256`: the digest when the caller has it already, so the bytes are not hashed twice."""
    return {"sha256": sha256 or hashlib.sha256(data).hexdigest(), "size": len(data),
            "data": data, "created_at": now or utcnow()}
