"""Tables of the web app's people: accounts, API tokens, sign-in sessions, sign-in attempts.

Secrets are never stored: tokens and session ids are kept as their sha256, passwords as
argon2 hashes. Sessions are rows (not signed cookies) so that signing out, deactivating a
user or revoking a session takes effect on the next request.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from sluice.core.tables import utcnow


class UserAccount(SQLModel, table=True):
    """A person who can sign in; `email` is lower-case (it is compared with recipients)."""

    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=512)
    name: str = Field(default="", max_length=256)
    role: str = Field(default="member", max_length=16)  # member | admin
    #: argon2 hash; empty: no local password (single sign-on or tokens only).
    password_hash: str = Field(default="", max_length=256)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class ApiToken(SQLModel, table=True):
    """A token for scripts; only its sha256 is kept, the plain token is shown once."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(unique=True, max_length=64)
    label: str = Field(default="", max_length=256)
    user_email: str = Field(index=True, max_length=512)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked: bool = False


class WebSession(SQLModel, table=True):
    """A signed-in browser; the cookie holds the id, the row its sha256 and CSRF token."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    id_sha256: str = Field(unique=True, max_length=64)
    user_email: str = Field(index=True, max_length=512)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    last_seen_at: datetime = Field(default_factory=utcnow)


class LoginAttempt(SQLModel, table=True):
    """A failed sign-in, counted per account and per client address for rate limiting."""

    __tablename__ = "login_attempt"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, max_length=512)
    client: str = Field(index=True, max_length=64)
    at: datetime = Field(default_factory=utcnow, index=True)
