"""Mixed threads: the space writes back to the people of a thread who still use mail.

While a team moves over step by step, some participants of a thread keep that kind of mail
as mail. A comment written in the space on a post that came from mail is sent to them as a
proper reply (In-Reply-To, References, the commenter as sender, through the upstream relay);
"send me this as mail" re-delivers one post to the reader's inbox. Both are outbox jobs for
the `MAIL_OUT` destination, written in the caller's transaction, so the comment and its mail
commit together and the mail survives restarts and upstream outages like any post.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from typing import Any

from sqlalchemy import Connection, Row, select
from sqlmodel import col

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.mail import GENERATED_HEADER
from sluice.core.post import Post, post_to_json
from sluice.core.tables import MessageRecord, RecipientOutcome, utcnow
from sluice.core.tables_router import MAIL_OUT, PENDING, Blob, OutboxJob, blob_row
from sluice.core.tables_space import Comment, PostRecipient, SpacePost

#: Mail out of the space is retried this long (an MTA's usual queue lifetime), then given up.
MAIL_OUT_DEADLINE = timedelta(days=5)
#: Outcomes that mean "this person got the thread's mail in their inbox".
_KEPT = ("delivered",)

#: Decides whether an address belongs to the organisation (mail never leaves it from here).
IsInternal = Callable[[str], bool]


def mail_keepers(conn: Connection, post: Row[Any], *, exclude: str,
                 internal: IsInternal) -> tuple[str, ...]:
    """The thread's internal participants who got its mail in their inbox.

    A participant is anyone who may see the post (recipients, the sender). One of them keeps
    the mail when the gateway delivered the thread's first message to them (deliver, copy or
    audit); those whose rules diverted it read the space instead, and people outside the
    organisation never get what was written in the space.
    """
    participants = set(conn.execute(select(col(PostRecipient.address)).where(
        col(PostRecipient.post_id) == post.id)).scalars())
    participants.add(str(post.sender).lower())
    kept = set(conn.execute(
        select(col(RecipientOutcome.recipient))
        .join(MessageRecord, col(MessageRecord.id) == col(RecipientOutcome.message_pk))
        .where(col(MessageRecord.message_id) == post.message_id,
               col(RecipientOutcome.status).in_(_KEPT))).scalars()) if post.message_id else set()
    sender = str(post.sender).lower()
    keepers = {a for a in participants if a in kept or a == sender}
    return tuple(sorted(a for a in keepers if a and a != exclude.lower() and internal(a)))


def _thread_ids(conn: Connection, post: Row[Any]) -> list[str]:
    """Message-IDs of the thread so far, oldest first: the post, then mail comments."""
    ids = [post.message_id] if post.message_id else []
    ids += [m for m in conn.execute(
        select(col(Comment.message_id)).where(col(Comment.post_id) == post.id,
                                              col(Comment.message_id) != "")
        .order_by(col(Comment.created_at), col(Comment.id))).scalars() if m not in ids]
    return ids


def reply_subject(subject: str) -> str:
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


def comment_mail(*, author: str, author_name: str, recipients: Iterable[str], subject: str,
                 thread_ids: list[str], text: str, link: str, message_id: str,
                 date: datetime) -> bytes:
    """The comment as a reply in the thread (pure)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((author_name, author)) if author_name else author
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = reply_subject(subject or "(no subject)")
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    if thread_ids:
        msg["In-Reply-To"] = thread_ids[-1]
        msg["References"] = " ".join(thread_ids[-20:])
    msg[GENERATED_HEADER] = "space-comment"
    msg["X-Sluice-Space-Link"] = link
    msg.set_content(f"{text}\n\n-- \nWritten in the shared space: {link}\n"
                    "Reply to this mail and your answer joins the thread there.\n")
    return msg.as_bytes()


def _queue(conn: Connection, *, key: str, content: bytes, mail_from: str,
           recipients: tuple[str, ...], post: Post) -> None:
    now = utcnow()
    blob = blob_row(content, now)
    sha = blob["sha256"]
    insert_ignoring_conflicts(conn, Blob.__table__, [blob], ["sha256"])  # type: ignore[attr-defined]
    insert_ignoring_conflicts(conn, OutboxJob.__table__, [{  # type: ignore[attr-defined]
        "key": key, "destination": MAIL_OUT, "fingerprint": sha, "post_json": post_to_json(post),
        "raw_sha256": sha, "recipients": "\n".join(recipients), "mail_from": mail_from,
        "state": PENDING, "attempts": 0, "next_attempt_at": now,
        "deadline_at": now + MAIL_OUT_DEADLINE, "created_at": now, "last_error": "", "link": "",
    }], ["key"])


def _job_post(post: Row[Any], *, key: str, subject: str, sender: str, sender_name: str,
              text: str, link: str, recipients: tuple[str, ...], at: datetime) -> Post:
    return Post(key=key, destination=MAIL_OUT, fingerprint=post.fingerprint,
                message_id=post.message_id, subject=subject, sender=sender,
                sender_name=sender_name, category=post.category, confidence=0.0,
                received_at=at, excerpt=text[:1200], url=link, attachments=(),
                recipients=recipients, thread_subject=post.thread_subject,
                in_reply_to=post.message_id)


def queue_comment_mail(conn: Connection, *, post_id: int, comment_id: int, author: str,
                       author_name: str, text: str, link: str, hostname: str,
                       internal: IsInternal) -> tuple[str, ...]:
    """Queue the comment for the thread's mail users; returns who gets it.

    The comment row gets the mail's Message-ID, so replies to it find their thread.
    """
    post = conn.execute(select(SpacePost).where(col(SpacePost.id) == post_id)).one()
    recipients = mail_keepers(conn, post, exclude=author, internal=internal)
    if not recipients:
        return ()
    message_id = f"<space.{comment_id}.{secrets.token_hex(6)}@{hostname}>"
    now = utcnow()
    content = comment_mail(author=author, author_name=author_name, recipients=recipients,
                           subject=post.subject, thread_ids=_thread_ids(conn, post), text=text,
                           link=link, message_id=message_id, date=now)
    conn.execute(Comment.__table__.update()  # type: ignore[attr-defined]
                 .where(col(Comment.id) == comment_id).values(message_id=message_id))
    key = f"comment:{comment_id}:{MAIL_OUT}"
    _queue(conn, key=key, content=content, mail_from=author, recipients=recipients,
           post=_job_post(post, key=key, subject=reply_subject(post.subject), sender=author,
                          sender_name=author_name, text=text, link=link,
                          recipients=recipients, at=now))
    return recipients


#: "Send me this as mail" twice within this many seconds sends it once.
RESEND_WINDOW_SECONDS = 300


def resend_header(reader: str, at: datetime) -> bytes:
    return (f"X-Sluice-Resent: from the shared space for {reader} on "
            f"{format_datetime(at)}\r\n{GENERATED_HEADER}: resent\r\n").encode()


def queue_resend(conn: Connection, *, post_id: int, reader: str, link: str) -> bool:
    """Queue the post's original message for the reader's inbox (the caller checked that the
    reader may see the post). False when the original is no longer stored."""
    post = conn.execute(select(SpacePost).where(col(SpacePost.id) == post_id)).one()
    raw = conn.execute(select(col(Blob.data)).where(
        col(Blob.sha256) == post.raw_sha256)).scalar() if post.raw_sha256 else None
    if raw is None:
        return False
    now = utcnow()
    content = resend_header(reader, now) + bytes(raw)
    window = int(now.timestamp()) // RESEND_WINDOW_SECONDS
    key = f"resend:{post_id}:{reader}:{window}:{MAIL_OUT}"
    recipients = (reader,)
    _queue(conn, key=key, content=content, mail_from="", recipients=recipients,
           post=_job_post(post, key=key, subject=post.subject, sender=post.sender,
                          sender_name=post.sender_name, text=post.excerpt, link=link,
                          recipients=recipients, at=now))
    return True
