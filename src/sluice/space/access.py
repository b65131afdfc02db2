"""The one access rule of the shared space, as SQL.

A person sees a post only if their address is one of the post's recipients
(`space_post_recipient`), or the post's channel was made open by an admin. Admins get no
exception: managing channels and users is not reading other people's mail.

Who counts as a recipient (written by `space.ingest`): the envelope recipients of the SMTP
transaction that carried the diverted message (Bcc included: that is the only place Bcc
shows), the To and Cc addresses of its header (recipients of the same mail served in another
transaction, or who kept it as mail), and its sender (who wrote it and would get every reply).
A mail reply joins a thread only when everyone it went to could already see the thread.

Everything built on posts filters through `visible_posts_clause`: comments, attachments,
reactions, search hits, and the material library, feedback board and calendar.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, false, or_, select
from sqlmodel import col

from sluice.core.tables_space import Channel, PostRecipient, SpacePost
from sluice.space.viewer import Viewer


def open_channel_clause() -> ColumnElement[bool]:
    """The post's channel is open to every signed-in person."""
    return exists(select(col(Channel.id)).where(
        col(Channel.name) == col(SpacePost.channel), col(Channel.open).is_(True)))


def recipient_clause(viewer: Viewer) -> ColumnElement[bool]:
    return exists(select(col(PostRecipient.id)).where(
        col(PostRecipient.post_id) == col(SpacePost.id),
        col(PostRecipient.address) == viewer.email.lower()))


def visible_posts_clause(viewer: Viewer | None) -> ColumnElement[bool]:
    """A WHERE clause over `space_post`: true for the posts `viewer` may see."""
    if viewer is None or not viewer.email:
        return false()
    return or_(recipient_clause(viewer), open_channel_clause())


def can_see_post(conn: Connection, viewer: Viewer | None, post_id: int) -> bool:
    found = conn.execute(select(col(SpacePost.id)).where(
        and_(col(SpacePost.id) == post_id, visible_posts_clause(viewer)))).first()
    return found is not None


def visible_post_ids(viewer: Viewer | None) -> Any:
    """A sub-select of the ids of visible posts, for tables that point at posts."""
    return select(col(SpacePost.id)).where(visible_posts_clause(viewer))
