"""The web side of mixed threads: a comment written here also reaches the thread's people
who still use mail, and a reader can have a post sent to their inbox (`space.mailback`)."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, select
from sqlmodel import col

from sluice.api import myrules
from sluice.core.errors import ConfigError
from sluice.core.settings import Settings
from sluice.core.tables_space import SpacePost
from sluice.router.rulesfile import RulesError
from sluice.space import mailback, posts
from sluice.space.access import can_see_post
from sluice.space.ingest import post_path
from sluice.space.viewer import Viewer


def _internal(settings: Settings | None) -> mailback.IsInternal:
    """The rules' internal domains decide; without a rules file nobody is mailed."""
    try:
        rules = myrules.file_rules(settings)
    except (RulesError, ConfigError, OSError):
        return lambda address: False
    if not rules.internal_domains:
        return lambda address: False
    return rules.is_internal


def _link(conn: Connection, settings: Settings | None, post_id: int) -> str:
    channel = conn.execute(select(col(SpacePost.channel)).where(
        col(SpacePost.id) == post_id)).scalar_one()
    base = settings.effective_base_url.rstrip("/") if settings else ""
    return f"{base}{post_path(channel, post_id)}"


def comment(engine: Engine, settings: Settings | None, viewer: Viewer, post_id: int,
            body: str) -> posts.CommentView:
    """Add the comment; in the same transaction, queue it as mail for the thread's mail users."""
    internal = _internal(settings)
    hostname = settings.hostname if settings else "localhost"

    def mail_it(conn: Connection, comment_id: int, text: str) -> None:
        link = f"{_link(conn, settings, post_id)}#comment-{comment_id}"
        mailback.queue_comment_mail(conn, post_id=post_id, comment_id=comment_id,
                                    author=viewer.email, author_name=viewer.name, text=text,
                                    link=link, hostname=hostname, internal=internal)

    return posts.add_comment(engine, viewer, post_id, body, after=mail_it)


def send_to_me(engine: Engine, settings: Settings | None, viewer: Viewer, post_id: int) -> bool:
    """Queue the post's original message for the viewer's inbox; NotFound when they may not
    see it, False when the original is no longer stored."""
    with engine.begin() as conn:
        if not can_see_post(conn, viewer, post_id):
            raise posts.NotFound(str(post_id))
        return mailback.queue_resend(conn, post_id=post_id, reader=viewer.email,
                                     link=_link(conn, settings, post_id))
