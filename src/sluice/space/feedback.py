"""The feedback board: `feedback` posts as items with a status and an owner, so a customer's
remark is tracked to an answer instead of sinking in a thread.

Who may change an item: anyone who may see its post (its recipients, everyone for an open
channel) may set its status and owner; admins only when they may see the post too (admins
get no exception to the access rule). An owner must be someone who may see the post: an owner
who cannot read the item could not act on it. Every change is recorded with who and when.
Comments on an item are the comments of its post (`space_comment`).

"Team" is the sender's mail domain: the sender's organisation is the team Sluice can know
without a directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update
from sqlmodel import col

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.tables import as_utc
from sluice.core.tables_board import FEEDBACK_STATUSES, FeedbackEvent, FeedbackItem
from sluice.core.tables_space import SpacePost
from sluice.space.access import can_see_post, visible_posts_clause
from sluice.space.hooks import NewPost
from sluice.space.viewer import Viewer

FEEDBACK = "feedback"
NEW = FEEDBACK_STATUSES[0]


def sender_domain(address: str) -> str:
    """The lower-case domain of an address ("" without one)."""
    return address.rpartition("@")[2].strip().lower() if "@" in address else ""


def feedback_hook(conn: Connection, new: NewPost) -> None:
    """A feedback post becomes an item with status `new` (once, whatever republishes)."""
    if new.post.category != FEEDBACK:
        return
    insert_ignoring_conflicts(conn, FeedbackItem.__table__, [{  # type: ignore[attr-defined]
        "post_id": new.post_id, "channel": new.channel, "title": new.post.subject,
        "status": NEW, "owner": "", "sender": new.post.sender,
        "sender_domain": sender_domain(new.post.sender),
        "created_at": new.post.received_at, "updated_at": new.post.received_at,
    }], ["post_id"])


@dataclass(frozen=True, slots=True)
class Change:
    actor: str
    field: str
    old: str
    new: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackView:
    id: int
    post_id: int
    channel: str
    title: str
    status: str
    owner: str
    sender: str
    sender_name: str
    sender_domain: str
    excerpt: str
    comment_count: int
    created_at: datetime
    updated_at: datetime
    #: Status and owner changes, oldest first (only filled for a single item).
    history: tuple[Change, ...] = ()


class FeedbackError(ValueError):
    """A change the board does not accept (unknown status, an owner who cannot see it)."""



_COLUMNS = tuple(col(c) for c in (
    FeedbackItem.id, FeedbackItem.post_id, FeedbackItem.channel, FeedbackItem.title,
    FeedbackItem.status, FeedbackItem.owner, FeedbackItem.sender, SpacePost.sender_name,
    FeedbackItem.sender_domain, SpacePost.excerpt, SpacePost.comment_count,
    FeedbackItem.created_at, FeedbackItem.updated_at))


def _view(row: tuple[object, ...], history: tuple[Change, ...] = ()) -> FeedbackView:
    (item_id, post_id, channel, title, status, owner, sender, sender_name, domain, excerpt,
     comments, created_at, updated_at) = row
    return FeedbackView(int(item_id), int(post_id), str(channel), str(title),  # type: ignore[call-overload]
                        str(status), str(owner), str(sender), str(sender_name), str(domain),
                        str(excerpt), int(comments or 0),  # type: ignore[call-overload]
                        as_utc(created_at), as_utc(updated_at), history)  # type: ignore[arg-type]


def feedback_items(conn: Connection, viewer: Viewer, *, status: str = "", domain: str = "",
                   channel: str = "", limit: int = 500) -> list[FeedbackView]:
    """The items the viewer may see, newest change first, optionally filtered."""
    query = (select(*_COLUMNS)
             .join(SpacePost, col(SpacePost.id) == col(FeedbackItem.post_id))
             .where(visible_posts_clause(viewer)))
    if status:
        query = query.where(col(FeedbackItem.status) == status)
    if domain:
        query = query.where(col(FeedbackItem.sender_domain) == domain.strip().lower())
    if channel:
        query = query.where(col(FeedbackItem.channel) == channel)
    query = query.order_by(col(FeedbackItem.updated_at).desc(), col(FeedbackItem.id).desc())
    return [_view(tuple(row)) for row in conn.execute(query.limit(limit)).all()]


def feedback_item(conn: Connection, viewer: Viewer, item_id: int) -> FeedbackView | None:
    """One item with its history; None when the viewer may not see its post."""
    row = conn.execute(
        select(*_COLUMNS)
        .join(SpacePost, col(SpacePost.id) == col(FeedbackItem.post_id))
        .where(col(FeedbackItem.id) == item_id, visible_posts_clause(viewer))).first()
    if row is None:
        return None
    history = tuple(
        Change(actor, field, old, new, as_utc(at)) for actor, field, old, new, at in conn.execute(
            select(col(FeedbackEvent.actor), col(FeedbackEvent.field), col(FeedbackEvent.old),
                   col(FeedbackEvent.new), col(FeedbackEvent.at))
            .where(col(FeedbackEvent.item_id) == item_id)
            .order_by(col(FeedbackEvent.at), col(FeedbackEvent.id))).all())
    return _view(tuple(row), history)


def change_item(conn: Connection, viewer: Viewer, item_id: int, *, status: str | None = None,
                owner: str | None = None, now: datetime | None = None) -> FeedbackView | None:
    """Set status and/or owner as `viewer`; None when the viewer may not see the item.

    Raises FeedbackError for an unknown status or an owner who may not see the item.
    """
    current = feedback_item(conn, viewer, item_id)
    if current is None:
        return None
    changes: dict[str, str] = {}
    if status is not None and status != current.status:
        if status not in FEEDBACK_STATUSES:
            raise FeedbackError(f"unknown status {status!r}; one of {FEEDBACK_STATUSES}")
        changes["status"] = status
    if owner is not None:
        owner = owner.strip().lower()
        if owner != current.owner:
            if owner and not can_see_post(conn, Viewer(email=owner), current.post_id):
                raise FeedbackError(f"{owner} cannot see this item and cannot own it")
            changes["owner"] = owner
    if not changes:
        return current
    at = now or datetime.now(UTC)
    conn.execute(update(FeedbackItem).where(col(FeedbackItem.id) == item_id)
                 .values(updated_at=at, **changes))
    conn.execute(FeedbackEvent.__table__.insert(), [  # type: ignore[attr-defined]
        {"item_id": item_id, "actor": viewer.email, "field": field,
         "old": getattr(current, field), "new": value, "at": at}
        for field, value in changes.items()])
    return feedback_item(conn, viewer, item_id)


def feedback_domains(conn: Connection, viewer: Viewer) -> list[str]:
    """The sender domains of the items the viewer may see (the board's team filter)."""
    return list(conn.execute(
        select(col(FeedbackItem.sender_domain)).distinct()
        .join(SpacePost, col(SpacePost.id) == col(FeedbackItem.post_id))
        .where(visible_posts_clause(viewer))
        .order_by(col(FeedbackItem.sender_domain))).scalars())
