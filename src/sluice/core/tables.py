"""Database tables shared by every package (SQLModel).

Mail that stays mail is stored as facts only: no body. Timestamps are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored moment as an aware UTC datetime: SQLite hands back naive ones (everything
    Sluice stores is UTC), PostgreSQL aware ones in the session's zone."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class MessageRecord(SQLModel, table=True):
    """One message as seen by the gateway (or the analyzer), without its body."""

    __tablename__ = "message"

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(index=True, unique=True, max_length=64)
    message_id: str = Field(default="", index=True, max_length=998)
    received_at: datetime = Field(default_factory=utcnow, index=True)
    source: str = Field(default="smtp", max_length=16)
    mail_from: str = Field(default="", max_length=512)
    header_from: str = Field(default="", max_length=512)
    subject: str | None = Field(default=None)
    size: int = 0
    rcpt_count: int = 0
    to_count: int = 0
    cc_count: int = 0
    attachment_count: int = 0
    attachment_bytes: int = 0
    in_reply_to: str = Field(default="", max_length=998)
    references: str = Field(default="")
    #: Not indexed: no query selects messages by it (0002 dropped the index).
    thread_subject: str = Field(default="")
    reply_depth: int = 0
    #: How many people read it (a distribution list counting as ten) and whether it looks
    #: sent by a list or a system: what the sender history (classifier/history.py) counts
    #: and the other columns cannot tell (0003).
    readers: int = 0
    automated: bool = False
    category: str | None = Field(default=None, index=True, max_length=32)
    confidence: float | None = None
    reasons: str | None = None  # newline-separated, strongest first
    model_version: str | None = Field(default=None, max_length=64)
    defects: str = ""


class RecipientOutcome(SQLModel, table=True):
    """What happened to one recipient of one message, and which rule decided it."""

    __tablename__ = "recipient_outcome"

    id: int | None = Field(default=None, primary_key=True)
    message_pk: int = Field(foreign_key="message.id", index=True)
    recipient: str = Field(index=True, max_length=512)
    action: str = Field(default="deliver", max_length=16)  # deliver | divert | digest | copy
    #: delivered | diverted | rejected | deferred | duplicate
    status: str = Field(max_length=16)
    reply: str = Field(default="", max_length=1024)
    rule: str = Field(default="", max_length=256)
    destination: str = Field(default="", max_length=256)
    mode: str = Field(default="enforce", max_length=8)  # audit: decided, not applied
    at: datetime = Field(default_factory=utcnow, index=True)


class LedgerEntry(SQLModel, table=True):
    """Delivery ledger: a recipient that has a message must never get it twice."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("fingerprint", "recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    #: Looked up through the unique (fingerprint, recipient) index: a second index on the
    #: fingerprint alone cost every recipient of every message a B-tree insert (0002).
    fingerprint: str = Field(max_length=64)
    recipient: str = Field(max_length=512)
    reply: str = Field(default="", max_length=1024)
    at: datetime = Field(default_factory=utcnow, index=True)


class Correction(SQLModel, table=True):
    """A person's correction of a verdict; the next `sluice train` learns from it."""

    __tablename__ = "correction"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    message_id: str = Field(default="", index=True, max_length=998)
    fingerprint: str = Field(default="", index=True, max_length=64)
    previous_category: str | None = Field(default=None, max_length=32)
    category: str = Field(max_length=32)
    corrected_by: str = Field(max_length=512)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class UserRuleRecord(SQLModel, table=True):
    """One of a user's own diversion rules, stored so the API can edit them per user.

    `rule` is JSON in the rules-file format (match, action, to, name, description); `mode`
    is kept apart so audit/enforce can be switched and counted without parsing JSON.
    """

    __tablename__ = "user_rule"
    __table_args__ = (UniqueConstraint("user", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(index=True, max_length=512)
    position: int
    rule: str
    mode: str = Field(default="enforce", max_length=16)
    updated_at: datetime = Field(default_factory=utcnow)


class PolicyRuleRecord(SQLModel, table=True):
    """One rule of the organisation policy as edited by admins in the web app (same JSON as
    `user_rule`); in force instead of the file's policy once `stored_rules` has `policy`."""

    __tablename__ = "policy_rule"

    id: int | None = Field(default=None, primary_key=True)
    position: int = Field(unique=True)
    rule: str
    mode: str = Field(default="enforce", max_length=16)
    updated_at: datetime = Field(default_factory=utcnow)


class StoredRulesRecord(SQLModel, table=True):
    """Whose rules the database holds in place of the rules file's: a user's address, or
    `policy` (never an address) for the organisation policy. A row with no rules beside it
    means "replaced by nothing", so an emptied list does not bring the file's rules back."""

    __tablename__ = "stored_rules"

    owner: str = Field(primary_key=True, max_length=512)
    rule_count: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=512)


class RulesChangeRecord(SQLModel, table=True):
    """Audit trail: who replaced (or handed back to the file) whose rules, and when.

    `rules` is the new list as JSON in the rules-file format ("[]" when handed back)."""

    __tablename__ = "rules_change"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    by: str = Field(default="", max_length=512)
    owner: str = Field(max_length=512, index=True)
    change: str = Field(max_length=16)  # replaced | restored (the file's rules again)
    rule_count: int = 0
    rules: str = Field(default="[]")
