"""Accounts and API tokens: the functions the web app, the CLI and tests share.

Each function opens its own short transaction on the engine it is given. Addresses are
stored lower-case because they are compared with the recipients of mail. Passwords are
argon2id hashes (argon2-cffi's defaults); tokens are stored as their sha256 only.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func
from sqlmodel import Session, col, delete, select

from sluice.core.tables import MessageRecord, RecipientOutcome, as_utc, utcnow
from sluice.core.tables_people import ApiToken, UserAccount, WebSession
from sluice.router.decide import EXTERNAL
from sluice.router.rulesfile import is_address
from sluice.space.viewer import ADMIN, MEMBER, ROLES, Viewer

#: Shorter passwords are refused: the sign-in rate limit is not the only defence.
MIN_PASSWORD_LENGTH = 8
#: Plain tokens start with this, so a leaked one is recognisable in logs and scanners.
TOKEN_PREFIX = "sluice_"
#: A token's last use is written at most this often (not on every request).
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so the answer takes as long.
    Made on first use: an argon2 hash at import slowed every `sluice` command."""
    return _hasher.hash(secrets.token_hex(16))


class PeopleError(ValueError):
    """A request about people that cannot be done (bad address, unknown user, weak password)."""


@dataclass(frozen=True, slots=True)
class UserView:
    email: str
    name: str
    role: str
    active: bool
    has_password: bool
    created_at: datetime
    last_login_at: datetime | None

    @property
    def viewer(self) -> Viewer:
        return Viewer(self.email, self.role, self.name)


@dataclass(frozen=True, slots=True)
class TokenView:
    id: int
    label: str
    user_email: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def normalize_email(email: str) -> str:
    address = email.strip().lower()
    if not is_address(address):
        raise PeopleError(f"'{email}' is not an address (name@domain)")
    return address


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PeopleError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _view(user: UserAccount) -> UserView:
    return UserView(user.email, user.name, user.role, user.active, bool(user.password_hash),
                    user.created_at, user.last_login_at)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise PeopleError(f"unknown role '{role}' (known: {', '.join(ROLES)})")
    return role


def _find(session: Session, email: str) -> UserAccount | None:
    return session.exec(select(UserAccount).where(col(UserAccount.email) == email)).first()


def ensure_user(engine: Engine, email: str, *, role: str = MEMBER, name: str = "",
                password: str | None = None) -> UserView:
    """The account for `email`, created when missing; role (and name and password when
    given) are set either way."""
    address = normalize_email(email)
    _check_role(role)
    password_hash = hash_password(password) if password is not None else None
    with Session(engine) as session:
        user = _find(session, address) or UserAccount(email=address)
        user.role = role
        if name or not user.name:
            user.name = name
        if password_hash is not None:
            user.password_hash = password_hash
        session.add(user)
        session.commit()
        session.refresh(user)
        return _view(user)


def get_user(engine: Engine, email: str) -> UserView | None:
    with Session(engine) as session:
        user = _find(session, email.strip().lower())
        return _view(user) if user is not None else None


def list_users(engine: Engine) -> list[UserView]:
    with Session(engine) as session:
        return [_view(u) for u in session.exec(select(UserAccount).order_by(
            col(UserAccount.email)))]


def _update(engine: Engine, email: str, **values: object) -> UserView:
    address = email.strip().lower()
    with Session(engine) as session:
        user = _find(session, address)
        if user is None:
            raise PeopleError(f"no account for {address}")
        for key, value in values.items():
            setattr(user, key, value)
        session.add(user)
        if values.get("active") is False or "password_hash" in values:
            # A deactivated account or a changed password ends every open sign-in.
            session.exec(delete(WebSession).where(col(WebSession.user_email) == address))
        session.commit()
        session.refresh(user)
        return _view(user)


def set_password(engine: Engine, email: str, password: str) -> UserView:
    return _update(engine, email, password_hash=hash_password(password))


def set_role(engine: Engine, email: str, role: str) -> UserView:
    return _update(engine, email, role=_check_role(role))


def set_active(engine: Engine, email: str, active: bool) -> UserView:
    return _update(engine, email, active=active)


def verify_password(engine: Engine, email: str, password: str) -> Viewer | None:
    """The viewer when `password` is right for an active account, else None.

    Takes the same time whether or not the account exists; rehashes old parameters.
    """
    address = email.strip().lower()
    with Session(engine) as session:
        user = _find(session, address)
        stored = user.password_hash if user is not None and user.active else ""
        try:
            _hasher.verify(stored or _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or not stored:
            return None
        if _hasher.check_needs_rehash(stored):
            user.password_hash = _hasher.hash(password)
        user.last_login_at = utcnow()
        session.add(user)
        session.commit()
        return Viewer(user.email, user.role, user.name)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(engine: Engine, email: str, label: str) -> str:
    """A new API token for an existing account; the plain token is returned only here."""
    address = email.strip().lower()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with Session(engine) as session:
        if _find(session, address) is None:
            raise PeopleError(f"no account for {address}")
        session.add(ApiToken(token_sha256=_token_hash(token), label=label.strip()[:256],
                             user_email=address))
        session.commit()
    return token


def list_tokens(engine: Engine, email: str) -> list[TokenView]:
    with Session(engine) as session:
        rows = session.exec(select(ApiToken).where(
            col(ApiToken.user_email) == email.strip().lower()).order_by(col(ApiToken.id)))
        return [TokenView(t.id or 0, t.label, t.user_email, t.created_at, t.last_used_at,
                          t.revoked) for t in rows]


def revoke_token(engine: Engine, email: str, token_id: int) -> bool:
    """Revoke one of this user's tokens; False when they have no such token."""
    with Session(engine) as session:
        token = session.exec(select(ApiToken).where(
            col(ApiToken.id) == token_id,
            col(ApiToken.user_email) == email.strip().lower())).first()
        if token is None:
            return False
        token.revoked = True
        session.add(token)
        session.commit()
        return True


def viewer_for_token(engine: Engine, token: str) -> Viewer | None:
    """Who a bearer token belongs to; None when unknown, revoked or the account is inactive."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with Session(engine) as session:
        row = session.exec(select(ApiToken, UserAccount).join(
            UserAccount, col(UserAccount.email) == col(ApiToken.user_email)).where(
            col(ApiToken.token_sha256) == _token_hash(token))).first()
        if row is None:
            return None
        api_token, user = row
        if api_token.revoked or not user.active:
            return None
        now = utcnow()
        last = api_token.last_used_at
        if last is None or as_utc(last) < now - TOKEN_TOUCH_INTERVAL:
            api_token.last_used_at = now
            session.add(api_token)
            session.commit()
        return Viewer(user.email, user.role, user.name)



def users_seen(engine: Engine, internal_domains: Collection[str] = ()) -> list[str]:
    """Internal addresses Sluice has seen as recipients or senders, sorted.

    With `internal_domains` (the rules' internal_domains) those decide; without, every
    recipient the rules did not mark external counts (senders are then left out: nothing
    tells an internal sender from an outside one; a gateway running without rules marks
    nobody external, so pass the domains whenever a rules file exists).
    """
    domains = {d.lower() for d in internal_domains}
    with Session(engine) as session:
        query = select(func.lower(col(RecipientOutcome.recipient))).distinct()
        if not domains:
            query = query.where(col(RecipientOutcome.rule) != EXTERNAL)
        found = set(session.exec(query))
        if domains:
            found |= {a.lower() for a in session.exec(
                select(col(MessageRecord.header_from)).distinct())}
    return sorted(a for a in found if is_address(a)
                  and (not domains or a.rpartition("@")[2] in domains))


__all__ = ["ADMIN", "MEMBER", "PeopleError", "TokenView", "UserView", "ensure_user",
           "get_user", "hash_password", "issue_token", "list_tokens", "list_users",
           "normalize_email", "revoke_token", "set_active", "set_password", "set_role",
           "users_seen", "verify_password", "viewer_for_token"]
