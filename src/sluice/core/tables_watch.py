"""Where `sluice watch` stands in each followed mailbox folder, so that it resumes by UID.

UIDs only mean something together with the folder's UIDVALIDITY: when the server reports a
different one, the stored `last_uid` is void and the watcher re-scans the mail that arrived
since `watching_since` (the content fingerprint keeps handled mail from being handled again).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from sluice.core.tables import utcnow


class WatchState(SQLModel, table=True):
    """One watched (account, folder): the last UID handled under its UIDVALIDITY."""

    __tablename__ = "watch_state"
    __table_args__ = (UniqueConstraint("account", "folder"),)

    id: int | None = Field(default=None, primary_key=True)
    #: The mailbox as `imaps://user@host:port` (never a password).
    account: str = Field(max_length=512)
    folder: str = Field(max_length=512)
    uidvalidity: int
    last_uid: int = 0
    #: The UID being handled (0: none). Found again after a crash, a message recorded as
    #: diverted at this UID is moved; at any other UID it is one the owner moved back.
    pending_uid: int = 0
    #: When the watcher first followed this folder: older mail is never handled by it
    #: (unless asked for with --backlog), even on a re-scan.
    watching_since: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
