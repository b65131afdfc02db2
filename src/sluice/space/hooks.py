"""What happens after a diverted message became a new post: the parts of the space that
build on posts (material library, feedback board, calendar) each get one call, inside the
transaction that inserted the post, so a post and everything derived from it commit together.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from sluice.core.mail import Mail
from sluice.core.post import Post


@dataclass(frozen=True, slots=True)
class NewPost:
    """A post just inserted (not a republish, not a reply that became a comment)."""

    post_id: int
    channel: str
    post: Post
    #: The whole diverted message, parsed from the blob store (attachment bytes included).
    mail: Mail
    raw_sha256: str


PostHook = Callable[[Connection, NewPost], None]


@functools.cache
def post_hooks() -> tuple[PostHook, ...]:
    """The hooks in the order they run; each module that builds on posts adds itself here."""
    # Imported here: the hook modules import NewPost from this one.
    from sluice.space.calendar import calendar_hook
    from sluice.space.feedback import feedback_hook
    from sluice.space.library import library_hook

    return (library_hook, feedback_hook, calendar_hook)


def run_post_hooks(conn: Connection, new: NewPost) -> None:
    for hook in post_hooks():
        hook(conn, new)


@functools.cache
def comment_hooks() -> tuple[PostHook, ...]:
    """For a mail reply that joined a thread as a comment (`post_id` is the thread's post):
    its files can be a new version of a document, its calendar part an updated event; it
    does not open a second feedback item for the thread."""
    from sluice.space.calendar import calendar_hook
    from sluice.space.library import library_hook

    return (library_hook, calendar_hook)


def run_comment_hooks(conn: Connection, new: NewPost) -> None:
    for hook in comment_hooks():
        hook(conn, new)
