"""Who is asking: the FastAPI dependencies every route uses, and the CSRF rule.

How to use (other route modules):

- JSON API routes (`/api/...`): take `viewer: ViewerDep`. Anonymous → 401 JSON with
  `WWW-Authenticate: Bearer`. Admin-only: `viewer: AdminDep` (→ 403 for members).
- HTML pages: take `viewer: PageViewerDep` (anonymous → 303 redirect to
  `/login?next=<path>`), or `AdminPageDep`. Render with `sluice.api.pages.render`, which
  gives templates `viewer` and `csrf_token`; templates extend `base.html`.
- Optional sign-in (e.g. `/`): `OptionalViewerDep` gives None for anonymous requests.

Credentials, first match wins: `Authorization: Bearer <token>` (an API token from
`people.issue_token`; a wrong token is 401, never a fall-back to the cookie); the trusted
single-sign-on header (only when `trusted_user_header` is set and the request comes from one
of `trusted_proxies`; an unknown address gets a member account); the session cookie.

CSRF: every dependency above rejects POST/PUT/PATCH/DELETE authenticated by cookie or by the
proxy header (403) unless the request carries the session's token — as the `X-CSRF-Token`
header (`static/sluice.js` adds it to same-origin fetch() calls from the
`<meta name="csrf-token">` of base.html) or as a `csrf_token` form field (forms:
`<input type="hidden" name="csrf_token" value="{{ csrf_token }}">`). Bearer-token requests
need none: a browser never adds that header by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from sluice.api import people
from sluice.api.security import WebConfig, from_trusted_proxy, same, sign
from sluice.api.sessions import session_viewer
from sluice.core.tables_people import UserAccount
from sluice.space.viewer import MEMBER, Viewer

SESSION_COOKIE = "sluice_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True, slots=True)
class Auth:
    """How a request was authenticated; `csrf_token` is "" for bearer tokens."""

    viewer: Viewer
    via: str  # token | session | proxy
    csrf_token: str = ""


class SignInRequired(Exception):
    """Raised by page dependencies; the app turns it into a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def config(request: Request) -> WebConfig:
    return request.app.state.web  # type: ignore[no-any-return]


def _engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def _unauthorized(detail: str = "sign in or send an API token") -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def _proxy_viewer(engine: Engine, email: str) -> Viewer | None:
    """The account behind a proxy-asserted address, created as a member the first time."""
    try:
        address = people.normalize_email(email)
    except people.PeopleError:
        return None
    with Session(engine) as session:
        user = session.exec(select(UserAccount).where(col(UserAccount.email) == address)).first()
    if user is None:
        return people.ensure_user(engine, address, role=MEMBER).viewer
    return Viewer(user.email, user.role, user.name) if user.active else None


def authenticate(request: Request) -> Auth | None:
    """The request's credentials checked once (cached on request.state); None: anonymous."""
    if hasattr(request.state, "sluice_auth"):
        return request.state.sluice_auth  # type: ignore[no-any-return]
    web, engine = config(request), _engine(request)
    auth: Auth | None = None
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        viewer = (people.viewer_for_token(engine, token.strip())
                  if scheme.lower() == "bearer" else None)
        if viewer is None:
            raise _unauthorized("the API token is unknown, revoked, or not a Bearer token")
        auth = Auth(viewer, "token")
    elif (web.trusted_user_header and from_trusted_proxy(web, request)
          and request.headers.get(web.trusted_user_header)):
        viewer = _proxy_viewer(engine, request.headers[web.trusted_user_header])
        if viewer is None:
            raise HTTPException(403, "this account is deactivated")
        auth = Auth(viewer, "proxy", sign(web.secret, "proxy-csrf", viewer.email))
    else:
        signed_in = session_viewer(engine, request.cookies.get(SESSION_COOKIE, ""))
        if signed_in is not None:
            auth = Auth(signed_in.viewer, "session", signed_in.csrf_token)
    request.state.sluice_auth = auth
    return auth


async def check_csrf(request: Request, expected: str) -> None:
    """403 unless an unsafe request carries `expected` in the header or the form."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not same(sent, expected):
        raise HTTPException(403, "CSRF token missing or wrong; reload the page and try again")


async def _checked(request: Request) -> Auth | None:
    auth = authenticate(request)
    if auth is not None and auth.via != "token":
        await check_csrf(request, auth.csrf_token)
    return auth


async def current_viewer(request: Request) -> Viewer:
    auth = await _checked(request)
    if auth is None:
        raise _unauthorized()
    return auth.viewer


async def optional_viewer(request: Request) -> Viewer | None:
    auth = await _checked(request)
    return auth.viewer if auth is not None else None


async def page_viewer(request: Request) -> Viewer:
    auth = await _checked(request)
    if auth is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    return auth.viewer


def _admin(viewer: Viewer) -> Viewer:
    if not viewer.is_admin:
        raise HTTPException(403, "only administrators may do this")
    return viewer


async def current_admin(viewer: Annotated[Viewer, Depends(current_viewer)]) -> Viewer:
    return _admin(viewer)


async def page_admin(viewer: Annotated[Viewer, Depends(page_viewer)]) -> Viewer:
    return _admin(viewer)


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
OptionalViewerDep = Annotated[Viewer | None, Depends(optional_viewer)]
PageViewerDep = Annotated[Viewer, Depends(page_viewer)]
AdminDep = Annotated[Viewer, Depends(current_admin)]
AdminPageDep = Annotated[Viewer, Depends(page_admin)]


def csrf_token(request: Request) -> str:
    """The CSRF token for the page being rendered ("" when not signed in by cookie)."""
    auth = authenticate(request)
    return auth.csrf_token if auth is not None else ""


def set_session_cookie(response: Response, web: WebConfig, session_id: str) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, max_age=int(web.session_days * 86400),
                        path="/", httponly=True, samesite="lax", secure=web.secure_cookies)


def clear_session_cookie(response: Response, web: WebConfig) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=web.secure_cookies)


def safe_next(path: str | None) -> str:
    """Only local paths: /login?next=https://elsewhere must not become an open redirect."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def install(app: FastAPI, web: WebConfig) -> None:
    """Attach the config and turn SignInRequired into a redirect to the sign-in page."""
    from urllib.parse import quote

    app.state.web = web

    @app.exception_handler(SignInRequired)
    async def _to_sign_in(request: Request, exc: SignInRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}",
                                status_code=303)
