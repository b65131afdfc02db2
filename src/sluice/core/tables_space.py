"""Tables of the built-in shared space: channels, posts, who may see them, comments,
reactions, read marks, attachments, and the full-text index.

Access rests on `post_recipient`: a person sees a post when their address has a row there
(or the channel is open). Indexes are chosen for 100,000 posts and more: a channel page walks
(channel, posted_at, id) newest first and probes (post_id, address); "my posts" walks
(address, post_id).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Connection, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from sluice.core.tables import utcnow

#: Why an address may see a post (post_recipient.role).
ENVELOPE, HEADER, SENDER = "envelope", "header", "sender"
#: Where a comment was written (space_comment.source).
WEB, MAIL = "web", "mail"


class Channel(SQLModel, table=True):
    """A place posts land in; `open` lets every signed-in person read it (an admin's choice)."""

    __tablename__ = "space_channel"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    open: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class SpacePost(SQLModel, table=True):
    """A diverted message as a post in a channel of the built-in shared space."""

    __tablename__ = "space_post"
    __table_args__ = (
        UniqueConstraint("channel", "fingerprint"),
        Index("ix_space_post_channel_posted", "channel", "posted_at", "id"),
        # Covers unread counts and search joins without reading the (large) body columns.
        Index("ix_space_post_id_channel_activity", "id", "channel", "last_activity_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=200)
    fingerprint: str = Field(index=True, max_length=64)
    message_id: str = Field(default="", index=True, max_length=998)
    #: sha256 over sender, subject, Message-ID, bodies and attachments: the same message
    #: arriving in two SMTP transactions (split recipient lists) is one post.
    content_key: str = Field(default="", max_length=64)
    subject: str = ""
    sender: str = Field(default="", max_length=512)
    sender_name: str = Field(default="", max_length=512)
    category: str = Field(default="", max_length=32)
    excerpt: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    #: sha256 of the raw message in the blob store.
    raw_sha256: str = Field(default="", max_length=64)
    attachments_json: str = Field(default="[]", sa_column=Column(Text, nullable=False,
                                                                 default="[]"))
    recipients: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    thread_subject: str = Field(default="", index=True)
    in_reply_to: str = Field(default="", max_length=998)
    #: The first post of the thread this post belongs to (itself for a new thread).
    thread_id: int | None = Field(default=None, index=True)
    #: Sanitised HTML (nh3), safe to put into a page as is.
    body_html: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    body_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    comment_count: int = 0
    posted_at: datetime = Field(default_factory=utcnow, index=True)
    last_activity_at: datetime = Field(default_factory=utcnow)


class PostRecipient(SQLModel, table=True):
    """An address that may see a post: the basis of the one access rule."""

    __tablename__ = "space_post_recipient"
    __table_args__ = (
        UniqueConstraint("post_id", "address"),
        Index("ix_space_post_recipient_address_post", "address", "post_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="space_post.id")
    address: str = Field(max_length=512)  # lower-case
    role: str = Field(default=ENVELOPE, max_length=16)


class PostAttachment(SQLModel, table=True):
    """A file of a post (or of a mail reply that became a comment); bytes are a blob row.

    Inline images (cid: parts shown inside the HTML body) are kept with `inline` set: the page
    shows them, but they are not attachments (nor material).
    """

    __tablename__ = "space_attachment"
    __table_args__ = (Index("ix_space_attachment_post_sha", "post_id", "sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="space_post.id")
    comment_id: int | None = None
    filename: str = Field(default="", max_length=512)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    size: int = 0
    sha256: str = Field(max_length=64)
    inline: bool = False
    content_id: str = Field(default="", max_length=998)


class Comment(SQLModel, table=True):
    """A comment on a post: written in the space (web) or a mail reply that joined the thread.

    `fingerprint` makes a republished reply a no-op: unique per post.
    """

    __tablename__ = "space_comment"
    __table_args__ = (UniqueConstraint("post_id", "fingerprint"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="space_post.id", index=True)
    author: str = Field(max_length=512)
    author_name: str = Field(default="", max_length=512)
    body_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    #: Escaped text with line breaks: safe to put into a page as is.
    body_html: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    source: str = Field(default=WEB, max_length=8)
    message_id: str = Field(default="", index=True, max_length=998)
    fingerprint: str = Field(index=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Reaction(SQLModel, table=True):
    __tablename__ = "space_reaction"
    __table_args__ = (UniqueConstraint("post_id", "user", "emoji"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="space_post.id", index=True)
    user: str = Field(max_length=512)
    emoji: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class ReadMark(SQLModel, table=True):
    """A person read a post at `read_at`; activity after that makes it unread again."""

    __tablename__ = "space_read_mark"
    __table_args__ = (UniqueConstraint("post_id", "user"),
                      Index("ix_space_read_mark_user_post", "user", "post_id", "read_at"))

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="space_post.id")
    user: str = Field(max_length=512)
    read_at: datetime = Field(default_factory=utcnow)


#: The full-text index. SQLite: an FTS5 table with its own copy of the text (snippets need
#: it). PostgreSQL: a plain table with a generated tsvector and a GIN index.
SEARCH_TABLE = "space_search"

_SQLITE_SEARCH_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5("
    "subject, body, sender, names, post_id UNINDEXED, comment_id UNINDEXED, "
    "tokenize = 'unicode61 remove_diacritics 2')",
)
_POSTGRES_SEARCH_DDL = (
    f"CREATE TABLE IF NOT EXISTS {SEARCH_TABLE} ("
    "id BIGSERIAL PRIMARY KEY, post_id BIGINT NOT NULL REFERENCES space_post(id), "
    "comment_id BIGINT NOT NULL DEFAULT 0, subject TEXT NOT NULL DEFAULT '', "
    "body TEXT NOT NULL DEFAULT '', sender TEXT NOT NULL DEFAULT '', "
    "names TEXT NOT NULL DEFAULT '', "
    "document tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('simple', subject), 'A') || "
    "setweight(to_tsvector('simple', names), 'B') || "
    "setweight(to_tsvector('simple', sender), 'B') || "
    # File names and addresses are single tokens to PostgreSQL's parser ("forecast-model.xlsx",
    # "carla@example.com"); their words are indexed too, as FTS5's tokenizer does.
    "setweight(to_tsvector('simple', "
    "regexp_replace(names || ' ' || sender, '[^[:alnum:]]+', ' ', 'g')), 'B') || "
    "setweight(to_tsvector('simple', body), 'C')) STORED)",
    f"CREATE INDEX IF NOT EXISTS ix_{SEARCH_TABLE}_document ON {SEARCH_TABLE} "
    "USING GIN (document)",
    f"CREATE INDEX IF NOT EXISTS ix_{SEARCH_TABLE}_post ON {SEARCH_TABLE} (post_id)",
)


def create_search_table(conn: Connection) -> None:
    """The search index as databases made before migrations got it (after create_all): the
    migration tests and benchmarks/migrations.py rebuild such databases with it. New schemas
    get the index from revision 0001, which keeps its own frozen copy of this SQL."""
    statements = _SQLITE_SEARCH_DDL if conn.dialect.name == "sqlite" else _POSTGRES_SEARCH_DDL
    for statement in statements:
        conn.execute(text(statement))
