"""Administration: accounts (and the addresses seen in mail without one), roles,
deactivation, channels open or closed, and the organisation policy.

The policy comes from the rules file until an admin saves one here: then the stored policy
is in force instead (checked exactly like the file's, against every user's rules in force),
until it is handed back to the file. Internal domains and destinations always stay in the
file. "Export" writes the rules in force as a rules file, so they can be kept in git; every
change of stored rules is in the audit trail shown on the page.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from sluice.api import myrules, people
from sluice.api.auth import AdminDep, AdminPageDep
from sluice.api.deps import EngineDep
from sluice.api.pages import render
from sluice.core.settings import Settings
from sluice.router.rules import POLICY, Rule, RuleSet
from sluice.router.rulesdb import recent_changes, restore_file_policy, stored_by, with_policy
from sluice.router.rulesexport import ruleset_yaml
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


class PolicyBody(BaseModel):
    #: Rules in the rules-file format: {name?, description?, match, action, to?, mode?} ...
    rules: list[dict[str, Any]] | None = None
    #: ... or the same as the YAML list the admin page edits (one of the two).
    rules_yaml: str | None = None


#: How many changes of stored rules the page and the API show.
CHANGES_SHOWN = 20


def _settings(request: Request) -> Settings | None:
    return request.app.state.settings  # type: ignore[no-any-return]


def _domains(request: Request) -> frozenset[str]:
    try:
        return myrules.file_rules(_settings(request)).internal_domains
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


def _rule_rows(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    return [myrules.rule_data(r) | {"mode": r.mode} for r in rules]


def _policy_state(engine: Any, settings: Settings | None) -> dict[str, Any]:
    """The policy in force and where it comes from; `problems` when it cannot be read."""
    state: dict[str, Any] = {
        "rules_file": str(settings.rules_file) if settings and settings.rules_file else "",
        "source": "file", "stored_at": None, "stored_by": "", "problems": [],
        "internal_domains": [], "destinations": [], "policy": [], "file_policy": []}
    try:
        file = myrules.file_rules(settings)
        state |= {"internal_domains": sorted(file.internal_domains),
                  "destinations": sorted(file.destinations),
                  "file_policy": _rule_rows(file.policy), "policy": _rule_rows(file.policy)}
        with Session(engine) as session:
            stored = stored_by(session, POLICY)
        if stored is not None:
            state |= {"source": "database", "stored_at": stored[0], "stored_by": stored[1]}
        state["policy"] = _rule_rows(myrules.base_rules(engine, settings).policy)
    except RulesError as exc:
        state["problems"] = exc.problems
    return state


def _changes(engine: Any, limit: int = CHANGES_SHOWN) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return [asdict(c) for c in recent_changes(session, limit)]


def _users_in_force(engine: Any, request: Request) -> RuleSet:
    try:
        return myrules.users_in_force(engine, _settings(request))
    except RulesError as exc:
        raise HTTPException(503, {"problems": exc.problems,
                                  "hint": "fix the rules file or the stored users' rules"}
                            ) from exc


def _checked_policy(body: PolicyBody, users: RuleSet) -> tuple[Rule, ...]:
    if body.rules is None and body.rules_yaml is None:
        raise HTTPException(422, {"problems": [
            "send the new policy as 'rules' (a list) or 'rules_yaml' (an empty list: none)"]})
    try:
        data = (myrules.yaml_data(body.rules_yaml, POLICY) if body.rules_yaml is not None
                else body.rules)
        return myrules.check_policy(data, users)
    except RulesError as exc:
        raise HTTPException(422, {"problems": exc.problems}) from exc


def _with_preview(engine: Any, request: Request, users: RuleSet,
                  policy: tuple[Rule, ...]) -> dict[str, Any]:
    return _policy_state(engine, _settings(request)) | {
        "checked": _rule_rows(policy),
        "preview": asdict(myrules.policy_preview(engine, users, policy))}


@router.get("/api/admin/policy")
def policy(request: Request, engine: EngineDep, viewer: AdminDep) -> dict[str, Any]:
    """The organisation policy in force: from the database when an admin saved one
    (`source`), else from the rules file (`file_policy` is the file's either way)."""
    return _policy_state(engine, _settings(request))


@router.put("/api/admin/policy")
def put_policy(body: PolicyBody, request: Request, engine: EngineDep,
               viewer: AdminDep) -> dict[str, Any]:
    """Replace the organisation policy (the file's stays in the file, out of force).
    Checked like the rules file against the destinations and every user's rules in force:
    422 lists every problem; the gateway applies it within its reload interval."""
    users = _users_in_force(engine, request)
    rules = _checked_policy(body, users)
    myrules.store_policy(engine, rules, viewer.email)
    return _with_preview(engine, request, users, rules)


@router.post("/api/admin/policy/preview")
def preview_policy(body: PolicyBody, request: Request, engine: EngineDep,
                   viewer: AdminDep) -> dict[str, Any]:
    """What this policy would have decided of the last 30 days' recorded mail (users' own
    rules first, as in the gateway), without saving it."""
    users = _users_in_force(engine, request)
    return _with_preview(engine, request, users, _checked_policy(body, users))


@router.delete("/api/admin/policy")
def restore_policy(request: Request, engine: EngineDep, viewer: AdminDep) -> dict[str, Any]:
    """Drop the stored policy: the rules file's is in force again (409 when it conflicts
    with users' rules saved since)."""
    users = _users_in_force(engine, request)
    file = myrules.file_rules(_settings(request))
    try:
        with_policy(users, file.policy, "the rules file's policy")
    except RulesError as exc:
        raise HTTPException(409, {"problems": exc.problems}) from exc
    with Session(engine) as session:
        restore_file_policy(session, by=viewer.email)
        session.commit()
    return _policy_state(engine, _settings(request))


@router.get("/api/admin/rules/changes")
def rule_changes(engine: EngineDep, viewer: AdminDep,
                 limit: int = CHANGES_SHOWN) -> list[dict[str, Any]]:
    """Who changed stored rules (the policy, or whose own rules) and when, newest first."""
    return _changes(engine, max(1, min(limit, 500)))


@router.get("/api/admin/rules/export", response_class=Response)
def export_rules(request: Request, engine: EngineDep, viewer: AdminDep) -> Response:
    """The rules in force as a rules file (YAML: internal_domains, destinations, policy,
    users), to keep in git; `sluice rules check` reads it back to the same rules."""
    try:
        rules = myrules.rules_in_force(engine, _settings(request))
    except RulesError as exc:
        raise HTTPException(409, {"problems": exc.problems}) from exc
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = ruleset_yaml(rules, f"Sluice rules in force, exported {stamp} by {viewer.email}.\n"
                        "The rules file with the policy and users' rules stored in the database.")
    return Response(text, media_type="application/yaml; charset=utf-8", headers={
        "Content-Disposition": 'attachment; filename="rules.yaml"',
        "X-Content-Type-Options": "nosniff"})


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_page(request: Request, engine: EngineDep, viewer: AdminPageDep,
               error: str = "", notice: str = "") -> HTMLResponse:
    state = _policy_state(engine, _settings(request))
    policy_yaml = myrules.rules_yaml(())
    if not state["problems"]:
        policy_yaml = myrules.rules_yaml(myrules.base_rules(engine, _settings(request)).policy)
    return render(request, "admin.html", viewer, error=error[:300], notice=notice[:300],
                  roles=ROLES, channels=channels.list_channels(engine, viewer),
                  **_people(engine, request), policy=state["policy"], policy_state=state,
                  policy_yaml=policy_yaml, rules_file=state["rules_file"],
                  rules_problems=state["problems"], changes=_changes(engine))


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
