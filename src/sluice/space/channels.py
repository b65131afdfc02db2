"""Channels: created on first use by the outbox, listed per person with unread counts, made
open (readable by every signed-in person) or retitled by admins.

A channel's `name` is the key the rules file's space destinations publish to; it never
changes (renaming it would make the next diverted mail create the old one again). What
admins rename is its title.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, func, select, update
from sqlmodel import col

from sluice.core.rawsql import Raw, insert_sql
from sluice.core.tables import utcnow
from sluice.core.tables_space import Channel, PostRecipient, ReadMark, SpacePost
from sluice.space.access import visible_posts_clause
from sluice.space.viewer import Viewer

MAX_NAME = 200


class NotAllowed(PermissionError):
    """Only admins manage channels."""


class NoSuchChannel(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class ChannelView:
    name: str
    title: str
    description: str
    open: bool
    posts: int  # visible to this viewer
    unread: int


_INSERT_CHANNEL = insert_sql("space_channel", ("name", "title", "description", "open",
                                               "created_at"), "name")


def ensure_channel(conn: Connection, name: str) -> None:
    """The channel row exists afterwards (the outbox's first post to a channel creates it).
    Plain SQL: the worker runs it for every post."""
    Raw(conn).execute(_INSERT_CHANNEL, {"name": name, "title": name, "description": "",
                                        "open": False, "created_at": utcnow()})


def unread_clause(viewer: Viewer) -> ColumnElement[bool]:
    """True for posts the viewer has not read since their last activity (a new comment)."""
    read = select(col(ReadMark.id)).where(
        col(ReadMark.post_id) == col(SpacePost.id), col(ReadMark.user) == viewer.email,
        col(ReadMark.read_at) >= col(SpacePost.last_activity_at))
    return ~read.exists()


def _counts(conn: Connection, viewer: Viewer) -> dict[str, tuple[int, int]]:
    """Visible and unread posts per channel.

    Visible posts: the access rule (`visible_posts_clause`) split into its two halves so each
    walks an index — the viewer's own recipient rows in closed channels, and every post of
    the open channels; the halves do not overlap, so their counts add up. Unread: visible
    minus the posts the viewer read since their last activity (walked from the viewer's read
    marks, filtered by the rule). Three index walks instead of a read-mark probe per post.
    """
    if not viewer.email:
        return {}
    open_names = select(col(Channel.name)).where(col(Channel.open).is_(True))
    own = (select(col(SpacePost.channel), func.count())
           .join(PostRecipient, col(PostRecipient.post_id) == col(SpacePost.id))
           .where(col(PostRecipient.address) == viewer.email,
                  col(SpacePost.channel).not_in(open_names))
           .group_by(col(SpacePost.channel)))
    opened = (select(col(SpacePost.channel), func.count())
              .where(col(SpacePost.channel).in_(open_names))
              .group_by(col(SpacePost.channel)))
    read = (select(col(SpacePost.channel), func.count())
            .join(ReadMark, col(ReadMark.post_id) == col(SpacePost.id))
            .where(col(ReadMark.user) == viewer.email,
                   col(ReadMark.read_at) >= col(SpacePost.last_activity_at),
                   visible_posts_clause(viewer))
            .group_by(col(SpacePost.channel)))
    totals: dict[str, int] = {}
    for query in (own, opened):
        for name, count in conn.execute(query).all():
            totals[name] = totals.get(name, 0) + int(count)
    done = {name: int(count) for name, count in conn.execute(read).all()}
    return {name: (total, total - done.get(name, 0)) for name, total in totals.items()}


def list_channels(engine: Engine, viewer: Viewer) -> list[ChannelView]:
    """Channels the viewer can read something in (admins: every channel, for managing it),
    with their own visible and unread post counts."""
    with engine.connect() as conn:
        counts = _counts(conn, viewer)
        channels = conn.execute(select(Channel).order_by(col(Channel.name))).all()
    views = []
    for channel in channels:
        total, new = counts.get(channel.name, (0, 0))
        if total or channel.open or viewer.is_admin:
            views.append(ChannelView(channel.name, channel.title or channel.name,
                                     channel.description, bool(channel.open), total, new))
    return views


def get_channel(engine: Engine, viewer: Viewer, name: str) -> ChannelView:
    """The channel as the viewer sees it; NoSuchChannel when they may not see it at all."""
    for channel in list_channels(engine, viewer):
        if channel.name == name:
            return channel
    raise NoSuchChannel(name)


def _require_admin(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise NotAllowed("only admins manage channels")


def _valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or "/" in name or name != " ".join(name.split()):
        raise ValueError("a channel name is 1-200 characters, no slash, no extra spaces")
    return name


def create_channel(engine: Engine, viewer: Viewer, name: str, title: str = "",
                   description: str = "", open_: bool = False) -> None:
    _require_admin(viewer)
    name = _valid_name(name)
    with engine.begin() as conn:
        ensure_channel(conn, name)
        conn.execute(update(Channel).where(col(Channel.name) == name).values(
            title=title.strip() or name, description=description, open=open_))


def set_open(engine: Engine, viewer: Viewer, name: str, open_: bool) -> None:
    """Open a channel to every signed-in person, or close it to its posts' recipients."""
    _require_admin(viewer)
    _update(engine, name, open=open_)


def retitle(engine: Engine, viewer: Viewer, name: str, title: str,
            description: str | None = None) -> None:
    _require_admin(viewer)
    values: dict[str, object] = {"title": title.strip() or name}
    if description is not None:
        values["description"] = description
    _update(engine, name, **values)


def _update(engine: Engine, name: str, **values: object) -> None:
    with engine.begin() as conn:
        result = conn.execute(update(Channel).where(col(Channel.name) == name).values(**values))
        if not result.rowcount:
            raise NoSuchChannel(name)

