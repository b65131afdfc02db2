"""Where a reply's thread went: a reply follows its thread into the place where each
recipient put the thread's start, so mail replies of people who still use mail come back as
comments instead of landing in the inboxes of those who moved the thread out.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select
from sqlmodel import col

from sluice.core.decision import DIGEST, DIVERT, ENFORCE
from sluice.core.tables import MessageRecord, RecipientOutcome
from sluice.core.tables_space import WEB, Comment, SpacePost

#: A thread's Message-IDs looked at per reply (In-Reply-To plus the newest References).
MAX_REFERENCES = 20


@dataclass(frozen=True, slots=True)
class ThreadOrigin:
    """Per recipient, the destination their copy of the thread's earlier mail went to."""

    destinations: dict[str, str]
    #: The reply answers a comment written in the space (sent out by `space.mailback`).
    answers_space_comment: bool = False


NO_ORIGIN = ThreadOrigin({})


def thread_origin(conn: Connection, references: list[str],
                  recipients: tuple[str, ...]) -> ThreadOrigin:
    refs = list(dict.fromkeys(r for r in references if r))[-MAX_REFERENCES:]
    if not refs or not recipients:
        return NO_ORIGIN
    roots = set(refs)
    answers_comment = False
    for source, root in conn.execute(
            select(col(Comment.source), col(SpacePost.message_id))
            .join(SpacePost, col(SpacePost.id) == col(Comment.post_id))
            .where(col(Comment.message_id).in_(refs))):
        answers_comment = answers_comment or source == WEB
        if root:
            roots.add(root)
    wanted = {r.lower() for r in recipients}
    found: dict[str, str] = {}
    for recipient, destination in conn.execute(
            select(col(RecipientOutcome.recipient), col(RecipientOutcome.destination))
            .join(MessageRecord, col(MessageRecord.id) == col(RecipientOutcome.message_pk))
            .where(col(MessageRecord.message_id).in_(sorted(roots)),
                   col(RecipientOutcome.recipient).in_(sorted(wanted)),
                   col(RecipientOutcome.status) == "diverted",
                   col(RecipientOutcome.action).in_((DIVERT, DIGEST)),
                   col(RecipientOutcome.mode) == ENFORCE,
                   col(RecipientOutcome.destination) != "")
            .order_by(col(MessageRecord.received_at).desc(), col(RecipientOutcome.id).desc())):
        found.setdefault(recipient.lower(), destination)  # the newest decision wins
    return ThreadOrigin(found, answers_comment)
