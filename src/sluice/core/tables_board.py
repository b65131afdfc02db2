"""Tables of the parts of the shared space built on posts: the material library, the feedback
board and the calendar.

Every row points at the post(s) that carried it: access is never stored here, it is always
the post's access rule (`space_post_recipient`, open channels) applied at query time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from sluice.core.tables import utcnow

#: Feedback statuses, in the order the board shows them.
FEEDBACK_STATUSES: tuple[str, ...] = ("new", "acknowledged", "planned", "done", "declined")
#: Calendar event statuses (iCalendar STATUS values Sluice keeps).
CONFIRMED, TENTATIVE, CANCELLED = "CONFIRMED", "TENTATIVE", "CANCELLED"


class Document(SQLModel, table=True):
    """One document of a channel's library: every file with the same normalised name."""

    __tablename__ = "board_document"
    __table_args__ = (UniqueConstraint("channel", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=200)
    #: The normalised name (see `space.library.document_key`): what makes two files one document.
    key: str = Field(max_length=512)
    #: The name as last sent (a filename, or a subject for a link-only material mail).
    name: str = Field(default="", max_length=512)
    created_at: datetime = Field(default_factory=utcnow)


class DocumentVersion(SQLModel, table=True):
    """One distinct file of a document; the same bytes sent again are not a new version."""

    __tablename__ = "board_document_version"
    __table_args__ = (UniqueConstraint("document_id", "sha256"),
                      UniqueConstraint("document_id", "version"))

    id: int | None = Field(default=None, primary_key=True)
    document_id: int = Field(foreign_key="board_document.id", index=True)
    #: 1, 2, 3 … in the order the versions arrived.
    version: int
    #: The post that first carried this version.
    post_id: int = Field(foreign_key="space_post.id")
    #: The blob holding the file (a link-only version: sha256 of its links, no blob).
    sha256: str = Field(max_length=64)
    filename: str = Field(default="", max_length=512)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    size: int = 0
    #: Newline-separated URLs of a link-only material mail ("" for a file).
    links: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    sender: str = Field(default="", max_length=512)
    sender_name: str = Field(default="", max_length=512)
    sent_at: datetime = Field(default_factory=utcnow)


class DocumentSend(SQLModel, table=True):
    """A post that carried a version (the first one and every re-send): who may see a version
    is whoever may see one of these posts."""

    __tablename__ = "board_document_send"
    __table_args__ = (UniqueConstraint("version_id", "post_id"),
                      Index("ix_board_document_send_post", "post_id"))

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="board_document_version.id", index=True)
    post_id: int = Field(foreign_key="space_post.id")
    sender: str = Field(default="", max_length=512)
    sent_at: datetime = Field(default_factory=utcnow)


class FeedbackItem(SQLModel, table=True):
    """A `feedback` post on the board, with its status and owner."""

    __tablename__ = "board_feedback"
    __table_args__ = (Index("ix_board_feedback_channel_status", "channel", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="space_post.id", unique=True)
    channel: str = Field(max_length=200)
    title: str = ""
    status: str = Field(default="new", max_length=16)
    owner: str = Field(default="", max_length=512)
    sender: str = Field(default="", max_length=512)
    sender_domain: str = Field(default="", index=True, max_length=255)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class FeedbackEvent(SQLModel, table=True):
    """One change of an item's status or owner: who, when, from what to what."""

    __tablename__ = "board_feedback_event"

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="board_feedback.id", index=True)
    actor: str = Field(max_length=512)
    field: str = Field(max_length=16)  # status | owner
    old: str = Field(default="", max_length=512)
    new: str = Field(default="", max_length=512)
    at: datetime = Field(default_factory=utcnow)


class CalendarEvent(SQLModel, table=True):
    """An event of a channel's calendar in its latest state (by iCalendar SEQUENCE).

    Times are UTC (`tzid` keeps the zone it was sent in); an all-day event has midnight
    times and an exclusive end day. An undated event (an `event` post whose date
    could not be read without guessing) has no start.
    """

    __tablename__ = "board_calendar_event"
    __table_args__ = (UniqueConstraint("channel", "uid"),
                      Index("ix_board_calendar_event_channel_start", "channel", "start"))

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=200)
    uid: str = Field(max_length=512)
    sequence: int = 0
    #: The post whose content the event now shows.
    post_id: int = Field(foreign_key="space_post.id")
    summary: str = ""
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool = False
    tzid: str = Field(default="", max_length=100)
    location: str = Field(default="", max_length=1024)
    organizer: str = Field(default="", max_length=512)
    status: str = Field(default=CONFIRMED, max_length=16)
    rrule: str = Field(default="", max_length=1024)
    #: ics (a text/calendar part) or text (read from an event post's subject and text).
    source: str = Field(default="ics", max_length=8)
    updated_at: datetime = Field(default_factory=utcnow)


class CalendarEventSource(SQLModel, table=True):
    """A post that carried (a version of) an event: who may see an event is whoever may see
    one of these posts."""

    __tablename__ = "board_calendar_source"
    __table_args__ = (UniqueConstraint("event_id", "post_id"),
                      Index("ix_board_calendar_source_post", "post_id"))

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="board_calendar_event.id", index=True)
    post_id: int = Field(foreign_key="space_post.id")
    sequence: int = 0
