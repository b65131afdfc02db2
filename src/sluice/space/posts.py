"""Reading and working with posts: channel pages, a post with its thread, comments written in
the space, reactions, read marks, attachment downloads.

Every function takes the viewer and goes through `space.access`: a post the viewer may not
see does not exist for them (`NotFound`, a 404 — never a 403 that would confirm it exists).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, delete, func, or_, select, update
from sqlmodel import col

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.tables import as_utc, utcnow
from sluice.core.tables_router import Blob
from sluice.core.tables_space import (
    WEB,
    Channel,
    Comment,
    PostAttachment,
    Reaction,
    ReadMark,
    SpacePost,
)
from sluice.space.access import can_see_post, visible_posts_clause
from sluice.space.channels import unread_clause
from sluice.space.sanitize import INLINE_IMAGE_TYPES, text_to_html
from sluice.space.search import index_comment
from sluice.space.viewer import Viewer

PAGE_SIZE = 30
MAX_PAGE_SIZE = 100
MAX_COMMENT_CHARS = 10_000
#: The reactions people can give, by name (the URL and the API use the name).
REACTIONS: dict[str, str] = {
    "thumbsup": "👍", "heart": "❤️", "tada": "🎉", "laugh": "😄", "eyes": "👀", "check": "✅",
}
_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class NotFound(LookupError):
    """No such post — or one the viewer may not see: the same answer for both."""


class BadInput(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PostSummary:
    id: int
    channel: str
    subject: str
    sender: str
    sender_name: str
    category: str
    excerpt: str
    posted_at: datetime
    comment_count: int
    attachment_count: int
    unread: bool


@dataclass(frozen=True, slots=True)
class ChannelPage:
    channel: str
    title: str
    posts: tuple[PostSummary, ...]
    #: Pass as `before` for the next (older) page; None on the last page.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AttachmentView:
    filename: str
    content_type: str
    size: int
    sha256: str
    comment_id: int | None


@dataclass(frozen=True, slots=True)
class CommentView:
    id: int
    author: str
    author_name: str
    body_html: str
    source: str
    created_at: datetime
    attachments: tuple[AttachmentView, ...]


@dataclass(frozen=True, slots=True)
class ReactionView:
    emoji: str  # the name
    glyph: str
    count: int
    mine: bool


@dataclass(frozen=True, slots=True)
class PostDetail:
    id: int
    channel: str
    subject: str
    sender: str
    sender_name: str
    category: str
    posted_at: datetime
    last_activity_at: datetime
    thread_id: int
    #: Sanitised when the post was stored (nh3); remote images carry data-remote-src only.
    body_html: str
    attachments: tuple[AttachmentView, ...]
    comments: tuple[CommentView, ...]
    reactions: tuple[ReactionView, ...]
    read: bool


@dataclass(frozen=True, slots=True)
class AttachmentFile:
    filename: str
    content_type: str
    data: bytes
    #: Only the post's own inline images (png, jpeg, gif, webp) may be shown in the page.
    inline: bool



def encode_cursor(posted_at: datetime, post_id: int) -> str:
    raw = f"{as_utc(posted_at).isoformat()}|{post_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, post_id = base64.urlsafe_b64decode(padded).decode().split("|")
        return datetime.fromisoformat(moment), int(post_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput("not a valid page cursor") from exc


def channel_page(engine: Engine, viewer: Viewer, channel: str, *, limit: int = PAGE_SIZE,
                 before: str | None = None) -> ChannelPage:
    """Newest first, `limit` posts older than the cursor; NotFound for a channel the viewer
    cannot read anything in."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    attachments = (select(func.count(col(PostAttachment.id)))
                   .where(col(PostAttachment.post_id) == col(SpacePost.id),
                          col(PostAttachment.inline).is_(False))
                   .scalar_subquery())
    query = (select(col(SpacePost.id), col(SpacePost.channel), col(SpacePost.subject),
                    col(SpacePost.sender), col(SpacePost.sender_name), col(SpacePost.category),
                    col(SpacePost.excerpt), col(SpacePost.posted_at),
                    col(SpacePost.comment_count),
                    attachments.label("attachment_count"),
                    unread_clause(viewer).label("unread"))
             .where(col(SpacePost.channel) == channel, visible_posts_clause(viewer))
             .order_by(col(SpacePost.posted_at).desc(), col(SpacePost.id).desc())
             .limit(limit + 1))
    if before:
        moment, last_id = decode_cursor(before)
        query = query.where(or_(col(SpacePost.posted_at) < moment,
                                and_(col(SpacePost.posted_at) == moment,
                                     col(SpacePost.id) < last_id)))
    with engine.connect() as conn:
        found = conn.execute(select(col(Channel.title), col(Channel.open)).where(
            col(Channel.name) == channel)).first()
        if found is None:
            raise NotFound(channel)
        rows = conn.execute(query).all()
        if not rows and not (found.open or viewer.is_admin) and not conn.execute(
                select(col(SpacePost.id)).where(col(SpacePost.channel) == channel,
                                                 visible_posts_clause(viewer)).limit(1)).first():
            raise NotFound(channel)  # nothing in it for this viewer: as if it did not exist
    posts = tuple(PostSummary(
        id=r.id, channel=r.channel, subject=r.subject, sender=r.sender,
        sender_name=r.sender_name, category=r.category, excerpt=r.excerpt,
        posted_at=as_utc(r.posted_at), comment_count=r.comment_count,
        attachment_count=int(r.attachment_count or 0), unread=bool(r.unread))
        for r in rows[:limit])
    more = len(rows) > limit
    cursor = encode_cursor(posts[-1].posted_at, posts[-1].id) if more and posts else None
    return ChannelPage(channel, found.title or channel, posts, cursor)


def _visible_post(conn: Connection, viewer: Viewer, post_id: int) -> Row[Any]:
    row = conn.execute(select(SpacePost).where(
        col(SpacePost.id) == post_id, visible_posts_clause(viewer))).first()
    if row is None:
        raise NotFound(str(post_id))
    return row


def get_post(engine: Engine, viewer: Viewer, post_id: int) -> PostDetail:
    with engine.connect() as conn:
        post = _visible_post(conn, viewer, post_id)
        files = conn.execute(select(PostAttachment).where(
            col(PostAttachment.post_id) == post_id, col(PostAttachment.inline).is_(False))
            .order_by(col(PostAttachment.id))).all()
        comments = conn.execute(select(Comment).where(col(Comment.post_id) == post_id)
                                .order_by(col(Comment.created_at), col(Comment.id))
                                ).all()
        reactions = conn.execute(select(col(Reaction.emoji), col(Reaction.user)).where(
            col(Reaction.post_id) == post_id)).all()
        read_at = conn.execute(select(col(ReadMark.read_at)).where(
            col(ReadMark.post_id) == post_id, col(ReadMark.user) == viewer.email)).scalar()
    views = [AttachmentView(f.filename, f.content_type, f.size, f.sha256, f.comment_id)
             for f in files]
    counts = Counter(emoji for emoji, _ in reactions)
    mine = {emoji for emoji, user in reactions if user == viewer.email}
    return PostDetail(
        id=post.id, channel=post.channel, subject=post.subject, sender=post.sender,
        sender_name=post.sender_name, category=post.category,
        posted_at=as_utc(post.posted_at), last_activity_at=as_utc(post.last_activity_at),
        thread_id=post.thread_id or post.id,
        # Plain-text mail is stored as text alone (space.ingest.prepare_mail).
        body_html=post.body_html or text_to_html(post.body_text),
        attachments=tuple(v for v in views if v.comment_id is None),
        comments=tuple(CommentView(
            id=c.id or 0, author=c.author, author_name=c.author_name, body_html=c.body_html,
            source=c.source, created_at=as_utc(c.created_at),
            attachments=tuple(v for v in views if v.comment_id == c.id)) for c in comments),
        reactions=tuple(ReactionView(name, REACTIONS[name], counts[name], name in mine)
                        for name in REACTIONS if counts[name]),
        read=read_at is not None and as_utc(read_at) >= as_utc(post.last_activity_at),
    )


#: Called inside the transaction that inserts a web comment, with the comment's id: what
#: must commit with it (the comment mailed to the thread's mail users).
AfterComment = Callable[[Connection, int, str], None]


def add_comment(engine: Engine, viewer: Viewer, post_id: int, body: str,
                after: AfterComment | None = None) -> CommentView:
    """A comment written in the space: plain text, stored escaped; the author has read the
    post by writing on it."""
    text = body.replace("\r\n", "\n").strip()
    if not text:
        raise BadInput("a comment needs some text")
    if len(text) > MAX_COMMENT_CHARS:
        raise BadInput(f"a comment is at most {MAX_COMMENT_CHARS} characters")
    now = utcnow()
    with engine.begin() as conn:
        _visible_post(conn, viewer, post_id)
        result = conn.execute(Comment.__table__.insert().values(  # type: ignore[attr-defined]
            post_id=post_id, author=viewer.email, author_name=viewer.name, body_text=text,
            body_html=text_to_html(text), source=WEB, message_id="",
            fingerprint="web:" + secrets.token_hex(16), created_at=now))
        comment_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        conn.execute(update(SpacePost).where(col(SpacePost.id) == post_id).values(
            comment_count=col(SpacePost.comment_count) + 1, last_activity_at=now))
        index_comment(conn, post_id, comment_id, body=text,
                      author=f"{viewer.name} {viewer.email}".strip())
        _set_read(conn, viewer, post_id, now)
        if after is not None:
            after(conn, comment_id, text)
    return CommentView(comment_id, viewer.email, viewer.name, text_to_html(text), WEB, now, ())


def react(engine: Engine, viewer: Viewer, post_id: int, emoji: str, on: bool) -> None:
    if emoji not in REACTIONS:
        raise BadInput(f"unknown reaction; one of {', '.join(REACTIONS)}")
    with engine.begin() as conn:
        _visible_post(conn, viewer, post_id)
        if on:
            insert_ignoring_conflicts(conn, Reaction.__table__, [{  # type: ignore[attr-defined]
                "post_id": post_id, "user": viewer.email, "emoji": emoji,
                "created_at": utcnow()}], ["post_id", "user", "emoji"])
        else:
            conn.execute(delete(Reaction).where(
                col(Reaction.post_id) == post_id, col(Reaction.user) == viewer.email,
                col(Reaction.emoji) == emoji))


def mark_read(engine: Engine, viewer: Viewer, post_id: int, read: bool) -> None:
    with engine.begin() as conn:
        _visible_post(conn, viewer, post_id)
        if read:
            _set_read(conn, viewer, post_id, utcnow())
        else:
            conn.execute(delete(ReadMark).where(col(ReadMark.post_id) == post_id,
                                                col(ReadMark.user) == viewer.email))


def _set_read(conn: Connection, viewer: Viewer, post_id: int, now: datetime) -> None:
    table = ReadMark.__table__  # type: ignore[attr-defined]
    insert_ignoring_conflicts(conn, table, [{"post_id": post_id, "user": viewer.email,
                                             "read_at": now}], ["post_id", "user"])
    conn.execute(update(ReadMark).where(col(ReadMark.post_id) == post_id,
                                        col(ReadMark.user) == viewer.email).values(read_at=now))


def attachment(engine: Engine, viewer: Viewer, post_id: int, sha256: str) -> AttachmentFile:
    """A file of a visible post (or of one of its comments), by its sha256."""
    if not _SHA256.match(sha256):
        raise NotFound(sha256)
    with engine.connect() as conn:
        if not can_see_post(conn, viewer, post_id):
            raise NotFound(str(post_id))
        row = conn.execute(select(PostAttachment).where(
            col(PostAttachment.post_id) == post_id, col(PostAttachment.sha256) == sha256)
            .order_by(col(PostAttachment.inline), col(PostAttachment.id)).limit(1)).first()
        if row is None:
            raise NotFound(sha256)
        data = conn.execute(select(col(Blob.data)).where(col(Blob.sha256) == sha256)).scalar()
    if data is None:
        raise NotFound(sha256)
    content_type = row.content_type.lower().strip()
    if not _MIME_TYPE.match(content_type):
        content_type = "application/octet-stream"
    return AttachmentFile(row.filename or "attachment", content_type, bytes(data),
                          inline=bool(row.inline) and content_type in INLINE_IMAGE_TYPES)
