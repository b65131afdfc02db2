"""Sign-in sessions as rows, and the failed sign-ins the rate limit counts.

The browser holds a random session id; the row holds its sha256, the CSRF token of that
session and when it expires. Ending a session deletes the row, so a stolen cookie stops
working when its owner signs out.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, func
from sqlmodel import Session, col, delete, or_, select

from sluice.core.tables import as_utc, utcnow
from sluice.core.tables_people import LoginAttempt, UserAccount, WebSession
from sluice.space.viewer import Viewer

#: A session's last_seen_at is written at most this often.
TOUCH_INTERVAL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session: who, and the CSRF token their forms and fetch() calls must carry."""

    viewer: Viewer
    csrf_token: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()



def start_session(engine: Engine, email: str, days: float) -> tuple[str, str]:
    """A new session for an account: (session id for the cookie, CSRF token)."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    with Session(engine) as session:
        session.add(WebSession(id_sha256=_hash(session_id), user_email=email.lower(),
                               csrf_token=csrf, created_at=now,
                               expires_at=now + timedelta(days=days), last_seen_at=now))
        session.exec(delete(WebSession).where(col(WebSession.expires_at) < now))
        session.commit()
    return session_id, csrf


def session_viewer(engine: Engine, session_id: str) -> SignedIn | None:
    """The live session for a cookie value; None when unknown, expired or deactivated."""
    if not session_id:
        return None
    now = utcnow()
    with Session(engine) as session:
        row = session.exec(select(WebSession, UserAccount).join(
            UserAccount, col(UserAccount.email) == col(WebSession.user_email)).where(
            col(WebSession.id_sha256) == _hash(session_id))).first()
        if row is None:
            return None
        web, user = row
        if as_utc(web.expires_at) <= now or not user.active:
            return None
        if as_utc(web.last_seen_at) < now - TOUCH_INTERVAL:
            web.last_seen_at = now
            session.add(web)
            session.commit()
        return SignedIn(Viewer(user.email, user.role, user.name), web.csrf_token)


def end_session(engine: Engine, session_id: str) -> None:
    with Session(engine) as session:
        session.exec(delete(WebSession).where(col(WebSession.id_sha256) == _hash(session_id)))
        session.commit()


def record_failure(engine: Engine, email: str, client: str) -> None:
    with Session(engine) as session:
        session.add(LoginAttempt(email=email.strip().lower()[:512], client=client[:64]))
        session.commit()


def too_many_failures(engine: Engine, email: str, client: str, *, limit: int,
                      window_seconds: float) -> bool:
    """Whether the account or the client address used up its failed sign-ins."""
    since = utcnow() - timedelta(seconds=window_seconds)
    email = email.strip().lower()
    with Session(engine) as session:
        session.exec(delete(LoginAttempt).where(col(LoginAttempt.at) < since))
        session.commit()
        counts = session.exec(select(
            func.count().filter(col(LoginAttempt.email) == email),
            func.count().filter(col(LoginAttempt.client) == client)).where(
            or_(col(LoginAttempt.email) == email, col(LoginAttempt.client) == client))).one()
    return any((n or 0) >= limit for n in counts)


def clear_failures(engine: Engine, email: str) -> None:
    """A successful sign-in forgives the account's failures (not the client address's)."""
    with Session(engine) as session:
        session.exec(delete(LoginAttempt).where(
            col(LoginAttempt.email) == email.strip().lower()))
        session.commit()
