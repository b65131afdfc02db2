"""Signing in and out with a local password.

The sign-in form has no session yet, so its CSRF token is bound to a random value in a
short-lived cookie and signed with the app's key (double submit, signed). Failed sign-ins
are counted per account and per client address; past `login_max_failures` within
`login_window_seconds` the answer is 429 without looking at the password.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sluice.api import people, sessions
from sluice.api.auth import (
    SESSION_COOKIE,
    OptionalViewerDep,
    PageViewerDep,
    clear_session_cookie,
    config,
    safe_next,
    set_session_cookie,
)
from sluice.api.deps import EngineDep
from sluice.api.pages import render
from sluice.api.security import client_address, same, sign

router = APIRouter(tags=["sign-in"])

LOGIN_COOKIE = "sluice_login"
LOGIN_COOKIE_SECONDS = 3600


def _login_page(request: Request, *, next_path: str, status_code: int = 200, error: str = "",
                email: str = "") -> HTMLResponse:
    web = config(request)
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status_code=status_code, error=error,
                      email=email, next_path=next_path,
                      login_token=sign(web.secret, "login", nonce))
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_COOKIE_SECONDS, path="/login",
                        httponly=True, samesite="strict", secure=web.secure_cookies)
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, viewer: OptionalViewerDep, next: str = "/") -> Response:
    if viewer is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next_path=safe_next(next))


@router.post("/login", include_in_schema=False)
def login(request: Request, engine: EngineDep, email: Annotated[str, Form()],
          password: Annotated[str, Form()], csrf_token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "/") -> Response:
    web = config(request)
    next_path = safe_next(next)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not (nonce and same(csrf_token, sign(web.secret, "login", nonce))):
        return _login_page(request, next_path=next_path, status_code=403, email=email,
                           error="The form expired or was not sent from this page; "
                                 "please sign in again.")
    client = client_address(web, request)
    if sessions.too_many_failures(engine, email, client, limit=web.login_max_failures,
                                  window_seconds=web.login_window_seconds):
        minutes = max(1, round(web.login_window_seconds / 60))
        response = _login_page(request, next_path=next_path, status_code=429, email=email,
                               error=f"Too many failed sign-ins; try again in {minutes} "
                                     "minutes.")
        response.headers["Retry-After"] = str(int(web.login_window_seconds))
        return response
    viewer = people.verify_password(engine, email, password)
    if viewer is None:
        sessions.record_failure(engine, email, client)
        return _login_page(request, next_path=next_path, status_code=401, email=email,
                           error="Wrong address or password.")
    sessions.clear_failures(engine, viewer.email)
    session_id, _ = sessions.start_session(engine, viewer.email, web.session_days)
    redirect = RedirectResponse(next_path, status_code=303)
    set_session_cookie(redirect, web, session_id)
    redirect.delete_cookie(LOGIN_COOKIE, path="/login")
    return redirect


@router.post("/logout", include_in_schema=False)
def logout(request: Request, engine: EngineDep, viewer: PageViewerDep) -> Response:
    """Ends this browser's session (PageViewerDep has checked the CSRF token)."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if session_id:
        sessions.end_session(engine, session_id)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, config(request))
    return response
