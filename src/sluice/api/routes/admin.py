"""Administration: accounts (and the addresses seen in mail without one), roles,
deactivation, channels open or closed, and the organisation policy in force.

The policy is read from the rules file, which administrators keep in git
(`sluice rules check`); the page shows it as the gateway applies it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from sluice.api import myrules, people
from sluice.api.auth import AdminDep, AdminPageDep
from sluice.api.deps import EngineDep
from sluice.api.pages import render
from sluice.core.settings import Settings
from sluice.router.rulesfile import RulesError
from sluice.space import channels
from sluice.space.viewer import MEMBER, ROLES, Viewer

router = APIRouter(tags=["admin"])


class NewUser(BaseModel):
    email: str
    name: str = ""
    role: str = MEMBER
    #: Optional first password (at least 8 characters); without one: tokens or SSO only.
    password: str | None = Field(default=None, min_length=1)


class UserChange(BaseModel):
    role: str | None = None
    active: bool | None = None


def _settings(request: Request) -> Settings | None:
    return request.app.state.settings  # type: ignore[no-any-return]


def _domains(request: Request) -> frozenset[str]:
    try:
        return myrules.base_rules(_settings(request)).internal_domains
    except RulesError:
        return frozenset()


def _people(engine: Any, request: Request) -> dict[str, Any]:
    accounts = people.list_users(engine)
    known = {u.email for u in accounts}
    return {"accounts": [asdict(u) for u in accounts],
            "seen_without_account": [a for a in people.users_seen(engine, _domains(request))
                                     if a not in known]}


def _change(engine: Any, admin: Viewer, email: str, change: UserChange) -> people.UserView:
    """Apply a change; an admin cannot demote or deactivate themselves (no lock-out)."""
    if email.lower() == admin.email and (change.active is False or
                                         (change.role is not None and change.role != "admin")):
        raise HTTPException(409, "you cannot demote or deactivate yourself; ask another admin")
    try:
        user = people.get_user(engine, email)
        if user is None:
            raise HTTPException(404, "no such account")
        if change.role is not None:
            user = people.set_role(engine, email, change.role)
        if change.active is not None:
            user = people.set_active(engine, email, change.active)
    except people.PeopleError as exc:
        raise HTTPException(422, str(exc)) from exc
    return user


@router.get("/api/admin/users")
def users(request: Request, engine: EngineDep, viewer: AdminDep) -> dict[str, Any]:
    """Accounts, and internal addresses seen in mail that have no account yet."""
    return _people(engine, request)


@router.post("/api/admin/users", status_code=201)
def add_user(body: NewUser, engine: EngineDep, viewer: AdminDep) -> dict[str, Any]:
    if people.get_user(engine, body.email) is not None:
        raise HTTPException(409, "this account exists; change it with PATCH")
    try:
        return asdict(people.ensure_user(engine, body.email, role=body.role, name=body.name,
                                         password=body.password))
    except people.PeopleError as exc:
        raise HTTPException(422, str(exc)) from exc


@router.patch("/api/admin/users/{email}")
def change_user(email: str, body: UserChange, engine: EngineDep,
                viewer: AdminDep) -> dict[str, Any]:
    """Set an account's role and/or deactivate it (its sessions end at once)."""
    return asdict(_change(engine, viewer, email, body))


@router.get("/api/admin/policy")
def policy(request: Request, viewer: AdminDep) -> dict[str, Any]:
    """The organisation policy in force (from the rules file)."""
    settings = _settings(request)
    try:
        base = myrules.base_rules(settings)
    except RulesError as exc:
        return {"rules_file": str(settings.rules_file if settings else ""),
                "problems": exc.problems, "policy": []}
    return {"rules_file": str(settings.rules_file) if settings and settings.rules_file else "",
            "internal_domains": sorted(base.internal_domains),
            "destinations": sorted(base.destinations),
            "policy": [{**myrules.rule_data(r), "mode": r.mode} for r in base.policy]}


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_page(request: Request, engine: EngineDep, viewer: AdminPageDep,
               error: str = "") -> HTMLResponse:
    settings = _settings(request)
    try:
        base = myrules.base_rules(settings)
        problems: list[str] = []
    except RulesError as exc:
        base, problems = None, exc.problems
    return render(request, "admin.html", viewer, error=error[:300], roles=ROLES,
                  channels=channels.list_channels(engine, viewer), **_people(engine, request),
                  policy=[myrules.rule_data(r) | {"mode": r.mode} for r in base.policy]
                  if base is not None else [],
                  rules_file=str(settings.rules_file) if settings and settings.rules_file else "",
                  rules_problems=problems)


def _back(error: str = "") -> RedirectResponse:
    from urllib.parse import urlencode

    return RedirectResponse("/admin" + (f"?{urlencode({'error': error})}" if error else ""),
                            status_code=303)


@router.post("/admin/users", include_in_schema=False)
def admin_form_user(engine: EngineDep, viewer: AdminPageDep, email: Annotated[str, Form()],
                    role: Annotated[str, Form()] = "",
                    active: Annotated[str, Form()] = "",
                    create: Annotated[str, Form()] = "") -> Response:
    try:
        if create:
            people.ensure_user(engine, email, role=role or MEMBER)
        else:
            _change(engine, viewer, email, UserChange(
                role=role or None, active={"yes": True, "no": False}.get(active)))
    except HTTPException as exc:
        return _back(str(exc.detail))
    except people.PeopleError as exc:
        return _back(str(exc))
    return _back()


@router.post("/admin/channels", include_in_schema=False)
def admin_form_channel(engine: EngineDep, viewer: AdminPageDep, name: Annotated[str, Form()],
                       open: Annotated[str, Form()]) -> Response:
    try:
        channels.set_open(engine, viewer, name, open == "yes")
    except channels.NoSuchChannel:
        return _back(f"no channel {name}")
    return _back()
