"""A diverted message enters the space: a new post, or a comment on the thread it answers.

Runs inside the outbox worker's transaction (`SpaceDestination.publish_in`), so the post, its
recipients, attachments, search rows, the hooks' rows and the job's completion commit
together. Every step is idempotent: a republished job finds what it wrote the first time.

Threads: a message whose In-Reply-To or References name a post or comment of the same
channel joins that post; failing that, a reply (Re: or reply headers) whose normalised
subject matches a post active in the last `SUBJECT_THREAD_DAYS` days joins it. It joins as a
comment only when everyone it went to may already see the post; a reply that widens the
audience becomes a post of its own (linked to the thread), so nobody gains access to the
earlier thread by being copied on a reply.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Row, select, update
from sqlmodel import col

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.mail import Mail
from sluice.core.parse import parse
from sluice.core.post import Post
from sluice.core.rawsql import Raw, insert_sql
from sluice.core.tables import as_utc
from sluice.core.tables_router import blob_row
from sluice.core.tables_space import (
    ENVELOPE,
    HEADER,
    MAIL,
    SENDER,
    Comment,
    SpacePost,
)
from sluice.space.channels import ensure_channel
from sluice.space.hooks import NewPost, run_comment_hooks, run_post_hooks
from sluice.space.parts import MessageParts, message_parts
from sluice.space.quoting import reply_text
from sluice.space.sanitize import INLINE_IMAGE_TYPES, cid_resolver, sanitize_html, text_to_html
from sluice.space.search import index_comment, index_rows, post_search_row

#: A reply without usable reply headers joins a post with its subject this recent.
SUBJECT_THREAD_DAYS = 30
#: Stored body text (search, page) is cut here.
MAX_BODY_CHARS = 100_000


# The statements of the new-post path, as plain SQL on the driver (core.rawsql): the worker
# runs them for every post, and SQLAlchemy's statement machinery cost several times what
# SQLite needs to run them. Rarer paths (threads, comments) use SQLAlchemy.
_BLOB = "SELECT data FROM blob WHERE sha256 = :sha"
_POST_BY_FINGERPRINT = "SELECT id FROM space_post WHERE channel = :channel AND fingerprint = :fp"
# By the selective key alone, the channel checked on the few rows found: with the channel in
# the WHERE clause SQLite walks the channel's posts instead.
_COMMENTS_BY_FINGERPRINT = (
    "SELECT c.id, c.post_id, p.channel FROM space_comment c "
    "JOIN space_post p ON p.id = c.post_id WHERE c.fingerprint = :fp")
_POSTS_BY_MESSAGE_ID = (
    "SELECT id, channel, content_key FROM space_post WHERE message_id = :mid")
_COMMENTS_BY_MESSAGE_ID = (
    "SELECT c.id, c.post_id, c.author, p.channel FROM space_comment c "
    "JOIN space_post p ON p.id = c.post_id WHERE c.message_id = :mid")
_PARTICIPANTS = "SELECT address FROM space_post_recipient WHERE post_id = :post_id"
_POST_COLUMNS = (
    "channel", "fingerprint", "message_id", "content_key", "subject", "sender", "sender_name",
    "category", "excerpt", "raw_sha256", "attachments_json", "recipients", "thread_subject",
    "in_reply_to", "thread_id", "body_html", "body_text", "comment_count", "posted_at",
    "last_activity_at")
_INSERT_POST = insert_sql("space_post", ("id", *_POST_COLUMNS), "channel, fingerprint")
#: The id the next post gets, asked for before its insert, so the row is written whole in
#: one statement (its body links and thread point at its own id). On SQLite the caller holds
#: the write lock already (the batch's channel upsert), so nobody can take the id meanwhile.
_NEXT_POST_ID = {
    "sqlite": "SELECT coalesce(max(id), 0) + 1 FROM space_post",
    "postgresql": "SELECT nextval(pg_get_serial_sequence('space_post', 'id'))",
}
_INSERT_RECIPIENT = insert_sql("space_post_recipient", ("post_id", "address", "role"),
                               "post_id, address")
_INSERT_BLOB = insert_sql("blob", ("sha256", "size", "data", "created_at"), "sha256")
_INSERT_ATTACHMENT = insert_sql("space_attachment", (
    "post_id", "comment_id", "filename", "content_type", "size", "sha256", "inline",
    "content_id"))
_FINISH_POST = ("UPDATE space_post SET body_html = :body, thread_id = :thread, "
                "attachments_json = :files WHERE id = :pid")


class MissingBlob(LookupError):
    """The raw message is not in the blob table: the job is retried, then falls back."""


@dataclass(frozen=True, slots=True)
class Ingested:
    post_id: int
    channel: str
    comment_id: int | None = None
    #: False when nothing was written (a republished job, a copy of a known message).
    created: bool = True


def channel_path(channel: str) -> str:
    return f"/space/{quote(channel, safe='')}"


def post_path(channel: str, post_id: int) -> str:
    """The page of a post, relative to the web app's base URL (the outbox links to it)."""
    return f"{channel_path(channel)}/{post_id}"


def attachment_path(post_id: int, sha256: str) -> str:
    return _attachment_url(str(post_id), sha256)


def _attachment_url(post: str, sha256: str) -> str:
    return f"/api/posts/{post}/attachments/{sha256}"


def content_key(mail: Mail) -> str:
    """Same sender, Message-ID, subject, bodies and files: the same message, whichever SMTP
    transaction carried it (trace headers differ)."""
    digest = hashlib.sha256()
    for piece in (mail.from_addr, mail.message_id, mail.subject, mail.text, mail.html,
                  *sorted(a.sha256 for a in mail.attachments)):
        digest.update(piece.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def audience(mail: Mail, post: Post) -> dict[str, str]:
    """Address → why it may see the message (envelope first: it is the strongest reason)."""
    found: dict[str, str] = {}
    for address in post.recipients:
        found.setdefault(address.lower(), ENVELOPE)
    for address in mail.to + mail.cc:
        found.setdefault(address.lower(), HEADER)
    sender = (mail.from_addr or post.sender).lower()
    if sender:
        found.setdefault(sender, SENDER)
    return {a: role for a, role in found.items() if a}


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything about a message that needs no database: worked out before the transaction
    that writes it, so a batch holds the (SQLite: single) write lock only for its writes."""

    post: Post
    raw_sha256: str
    mail: Mail
    who: dict[str, str]
    key: str
    parts: MessageParts
    #: Sanitised body with `token` where the post's id goes (cid: image URLs).
    body_html: str
    token: str


def load_raw(conn: Connection, post: Post, raw_sha256: str) -> bytes:
    raw = Raw(conn).scalar(_BLOB, {"sha": raw_sha256})
    if raw is None:
        raise MissingBlob(f"no blob {raw_sha256} for {post.key}")
    return bytes(raw)


def prepare(post: Post, raw: bytes, raw_sha256: str) -> Prepared:
    """Parse, sanitise and take apart the message (pure)."""
    return prepare_mail(post, parse(raw), raw_sha256)


def prepare_mail(post: Post, mail: Mail, raw_sha256: str) -> Prepared:
    """Sanitise and take apart a parsed message (pure); its envelope is not used."""
    # parse counts every part message_parts would return: mail without attachments and
    # inline images (most of it) is not walked a second time.
    parts = (message_parts(mail) if mail.attachments or mail.inline_images
             else MessageParts({}, ()))
    token = f"sluice-post-{secrets.token_hex(8)}"
    cids = {image.content_id: _attachment_url(token, hashlib.sha256(image.data).hexdigest())
            for image in parts.inline_images if image.content_type in INLINE_IMAGE_TYPES}
    # Plain-text mail keeps no HTML copy of its text: the post page renders body_text when
    # body_html is empty (space.posts.get_post), so each post writes its text once.
    body_html = (sanitize_html(mail.html, cid_resolver(cids), f"/api/posts/{token}/")
                 if mail.html.strip() else "")
    return Prepared(post, raw_sha256, mail, audience(mail, post), content_key(mail), parts,
                    body_html, token)


def ingest(conn: Connection, channel: str, post: Post, raw_sha256: str) -> Ingested:
    return ingest_prepared(conn, channel, prepare(post, load_raw(conn, post, raw_sha256),
                                                  raw_sha256))


class Batch:
    """What the posts of one outbox batch share within its transaction: each channel is
    upserted once, and the search rows are inserted together at the end (`flush`), in the
    same transaction, so a post is searchable as soon as it is visible."""

    def __init__(self) -> None:
        self.channels: set[str] = set()
        self.search: list[dict[str, Any]] = []

    def ensure_channel(self, conn: Connection, channel: str) -> None:
        if channel not in self.channels:
            ensure_channel(conn, channel)
            self.channels.add(channel)

    def flush(self, conn: Connection) -> None:
        """Write the batch's search rows; call before the batch's transaction commits."""
        rows, self.search = self.search, []
        index_rows(conn, rows)


def ingest_prepared(conn: Connection, channel: str, prepared: Prepared,
                    batch: Batch | None = None) -> Ingested:
    """`batch`: the outbox batch this post is one of (its caller flushes it before the
    commit); without one, every row is written here."""
    post, mail, who = prepared.post, prepared.mail, prepared.who
    raw = Raw(conn)
    known = _already_ingested(raw, channel, post.fingerprint)
    if known is not None:
        return known
    if batch is None:
        ensure_channel(conn, channel)
    else:
        batch.ensure_channel(conn, channel)
    copy = _same_message(raw, channel, mail, prepared.key)
    if copy is not None:  # the same mail in another SMTP transaction: more recipients
        _add_recipients(raw, copy.post_id, who)
        return copy
    target = _thread_target(conn, channel, mail, post.received_at)
    if target is not None and who.keys() <= _participants(raw, _id(target.id)):
        return _add_comment(conn, target, prepared)
    thread_id = target.thread_id if target is not None else None
    return _add_post(conn, raw, channel, prepared, thread_id, batch)


def _already_ingested(raw: Raw, channel: str, fingerprint: str) -> Ingested | None:
    post_id = raw.scalar(_POST_BY_FINGERPRINT, {"channel": channel, "fp": fingerprint})
    if post_id is not None:
        return Ingested(int(post_id), channel, created=False)
    # Looked up by the (selective) fingerprint alone, the channel checked on the few rows:
    # with the channel in the WHERE clause SQLite walks the channel's posts instead.
    for comment_id, post_id, row_channel in raw.all(_COMMENTS_BY_FINGERPRINT,
                                                     {"fp": fingerprint}):
        if row_channel == channel:
            return Ingested(int(post_id), channel, int(comment_id), created=False)
    return None


def _same_message(raw: Raw, channel: str, mail: Mail, key: str) -> Ingested | None:
    if not mail.message_id:
        return None
    # By Message-ID alone (indexed, selective); channel and content checked on the rows.
    for post_id, row_channel, content in raw.all(_POSTS_BY_MESSAGE_ID,
                                                 {"mid": mail.message_id}):
        if row_channel == channel and content == key:
            return Ingested(int(post_id), channel, created=False)
    for comment_id, post_id, author, row_channel in raw.all(_COMMENTS_BY_MESSAGE_ID,
                                                            {"mid": mail.message_id}):
        if row_channel == channel and author == mail.from_addr:
            return Ingested(int(post_id), channel, int(comment_id), created=False)
    return None


def _thread_target(conn: Connection, channel: str, mail: Mail,
                   now: datetime) -> Row[Any] | None:
    """The post this message answers, by reply headers first, then by subject."""
    wanted = [mail.thread.in_reply_to, *reversed(mail.thread.references)]
    wanted = [m for m in dict.fromkeys(wanted) if m and m != mail.message_id]
    if wanted:
        # By Message-ID (indexed); the channel is checked on the rows found.
        by_post = {row.message_id: row.id for row in conn.execute(
            select(col(SpacePost.id), col(SpacePost.message_id), col(SpacePost.channel))
            .where(col(SpacePost.message_id).in_(wanted))) if row.channel == channel}
        by_comment = {row.message_id: row.post_id for row in conn.execute(
            select(col(Comment.post_id), col(Comment.message_id), col(SpacePost.channel))
            .join(SpacePost, col(SpacePost.id) == col(Comment.post_id))
            .where(col(Comment.message_id).in_(wanted))) if row.channel == channel}
        for message_id in wanted:
            post_id = by_post.get(message_id) or by_comment.get(message_id)
            if post_id is not None:
                return _post(conn, int(post_id))
    subject = mail.thread.normalized_subject
    if mail.thread.reply_depth > 0 and subject:
        since = as_utc(now) - timedelta(days=SUBJECT_THREAD_DAYS)
        post_id = conn.execute(
            select(col(SpacePost.id)).where(
                col(SpacePost.channel) == channel, col(SpacePost.thread_subject) == subject,
                col(SpacePost.last_activity_at) >= since)
            .order_by(col(SpacePost.last_activity_at).desc()).limit(1)).scalar()
        if post_id is not None:
            return _post(conn, int(post_id))
    return None


def _post(conn: Connection, post_id: int) -> Row[Any]:
    return conn.execute(select(SpacePost).where(col(SpacePost.id) == post_id)).one()


def _id(value: int | None) -> int:
    if value is None:
        raise LookupError("row without an id")
    return int(value)


def _participants(raw: Raw, post_id: int) -> set[str]:
    return {address for (address,) in raw.all(_PARTICIPANTS, {"post_id": post_id})}


def _add_recipients(raw: Raw, post_id: int, who: dict[str, str]) -> None:
    raw.executemany(_INSERT_RECIPIENT, [
        {"post_id": post_id, "address": address, "role": role}
        for address, role in sorted(who.items())])


def _store_blobs(raw: Raw, files: dict[str, bytes], now: datetime) -> None:
    raw.executemany(_INSERT_BLOB, [blob_row(data, now, sha256=sha)
                                   for sha, data in sorted(files.items())])


def _attachment_rows(raw: Raw, post_id: int, comment_id: int | None, mail: Mail,
                     parts: MessageParts) -> None:
    raw.executemany(_INSERT_ATTACHMENT, [
        {"post_id": post_id, "comment_id": comment_id, "filename": a.filename[:512],
         "content_type": a.content_type[:200], "size": a.size, "sha256": a.sha256,
         "inline": False, "content_id": ""}
        for a in mail.attachments if a.sha256 in parts.attachments])


def _add_comment(conn: Connection, target: Row[Any], prepared: Prepared) -> Ingested:
    mail, post, parts = prepared.mail, prepared.post, prepared.parts
    body = reply_text(mail.text)[:MAX_BODY_CHARS]
    table = Comment.__table__  # type: ignore[attr-defined]
    insert_ignoring_conflicts(conn, table, [{
        "post_id": target.id, "author": (mail.from_addr or post.sender).lower(),
        "author_name": mail.from_name[:512], "body_text": body, "body_html": text_to_html(body),
        "source": MAIL, "message_id": mail.message_id, "fingerprint": post.fingerprint,
        "created_at": post.received_at}], ["post_id", "fingerprint"])
    comment_id = _id(conn.execute(select(col(Comment.id)).where(
        col(Comment.post_id) == target.id,
        col(Comment.fingerprint) == post.fingerprint)).scalar_one())
    raw = Raw(conn)
    _store_blobs(raw, parts.attachments, post.received_at)
    _attachment_rows(raw, target.id, comment_id, mail, parts)
    conn.execute(update(SpacePost).where(col(SpacePost.id) == target.id).values(
        comment_count=col(SpacePost.comment_count) + 1,
        last_activity_at=max(as_utc(target.last_activity_at), as_utc(post.received_at))))
    index_comment(conn, target.id, comment_id, body=body, author=_who(mail, post),
                  names=" ".join(a.filename for a in mail.attachments))
    # "v3 attached" in reply to the thread, an updated invitation: the library and the
    # calendar take them from the thread's post (whose readers are the reply's readers).
    run_comment_hooks(conn, NewPost(post_id=target.id, channel=target.channel, post=post,
                                    mail=mail, raw_sha256=prepared.raw_sha256))
    return Ingested(target.id, target.channel, comment_id)


def _who(mail: Mail, post: Post) -> str:
    return f"{mail.from_name} {mail.from_addr or post.sender}".strip()


def _add_post(conn: Connection, raw: Raw, channel: str, prepared: Prepared,
              thread_id: int | None, batch: Batch | None) -> Ingested:
    post, mail, parts = prepared.post, prepared.mail, prepared.parts
    attachments = json.dumps([{"filename": a.filename, "content_type": a.content_type,
                               "size": a.size, "sha256": a.sha256} for a in mail.attachments],
                             ensure_ascii=False)
    post_id = int(raw.scalar(_NEXT_POST_ID[raw.dialect]))
    inserted = raw.execute(_INSERT_POST, {
        "id": post_id, "channel": channel, "fingerprint": post.fingerprint,
        "message_id": post.message_id, "content_key": prepared.key, "subject": post.subject,
        "sender": post.sender, "sender_name": post.sender_name, "category": post.category,
        "excerpt": post.excerpt, "raw_sha256": prepared.raw_sha256,
        "attachments_json": attachments, "recipients": "\n".join(post.recipients),
        "thread_subject": post.thread_subject, "in_reply_to": post.in_reply_to,
        "thread_id": thread_id or post_id,
        "body_html": prepared.body_html.replace(prepared.token, str(post_id)),
        "body_text": mail.text[:MAX_BODY_CHARS], "comment_count": 0,
        "posted_at": post.received_at, "last_activity_at": post.received_at,
    }).rowcount
    if inserted != 1:  # the same post came in meanwhile: finish that row, as before
        post_id = _id(raw.scalar(_POST_BY_FINGERPRINT, {"channel": channel,
                                                        "fp": post.fingerprint}))
        raw.execute(_FINISH_POST, {
            "pid": post_id, "body": prepared.body_html.replace(prepared.token, str(post_id)),
            "thread": thread_id or post_id, "files": attachments})
    _add_recipients(raw, post_id, prepared.who)
    images = [image for image in parts.inline_images if image.content_type in INLINE_IMAGE_TYPES]
    files = dict(parts.attachments)
    files.update({hashlib.sha256(i.data).hexdigest(): i.data for i in images})
    _store_blobs(raw, files, post.received_at)
    _attachment_rows(raw, post_id, None, mail, parts)
    raw.executemany(_INSERT_ATTACHMENT, [
        {"post_id": post_id, "comment_id": None, "filename": "",
         "content_type": image.content_type, "size": len(image.data),
         "sha256": hashlib.sha256(image.data).hexdigest(), "inline": True,
         "content_id": image.content_id[:998]} for image in images])
    search = post_search_row(post_id, subject=post.subject, body=mail.text[:MAX_BODY_CHARS],
                             sender=f"{post.sender_name} {post.sender}".strip(),
                             names=" ".join(a.filename for a in mail.attachments))
    if batch is None:
        index_rows(conn, [search])
    else:
        batch.search.append(search)
    run_post_hooks(conn, NewPost(post_id=post_id, channel=channel, post=post, mail=mail,
                                 raw_sha256=prepared.raw_sha256))
    return Ingested(post_id, channel)
