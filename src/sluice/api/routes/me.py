"""The signed-in person: who they are, their own rules (with a preview on their recorded
mail), and their own diverted mail with corrections. JSON under /api/me, pages under /me."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from sluice.api import mymail, myrules
from sluice.api.auth import PageViewerDep, ViewerDep, csrf_token
from sluice.api.deps import EngineDep
from sluice.api.pages import render
from sluice.core.settings import Settings
from sluice.core.verdict import CATEGORIES
from sluice.router.rules import Rule, RuleSet
from sluice.router.rulesfile import RulesError
from sluice.space.viewer import Viewer

router = APIRouter(tags=["me"])


class RulesBody(BaseModel):
    #: Rules in the rules-file format: {name?, description?, match, action, to?, mode?}.
    rules: list[dict[str, Any]] = Field(default_factory=list)


class CorrectionBody(BaseModel):
    message_id: str = Field(min_length=1)
    #: The right category; `direct` means "this should have stayed mail".
    category: str


def _settings(request: Request) -> Settings | None:
    return request.app.state.settings  # type: ignore[no-any-return]


def _base(request: Request, engine: Any) -> RuleSet:
    try:
        return myrules.base_rules(engine, _settings(request))
    except RulesError as exc:
        raise HTTPException(503, {"problems": exc.problems,
                                  "hint": "the rules file has problems; tell an admin"}) from exc


def _rules_json(engine: Any, base: RuleSet, viewer: Viewer,
                rules: tuple[Rule, ...]) -> dict[str, Any]:
    preview = myrules.preview(engine, base, viewer.email, rules)
    return {
        "rules": [myrules.rule_data(r) for r in rules],
        "destinations": sorted(base.destinations),
        "categories": list(CATEGORIES),
        "preview": asdict(preview),
    }


@router.get("/api/me")
def me(request: Request, viewer: ViewerDep) -> dict[str, Any]:
    """Who is signed in; `csrf_token` is what scripts send as X-CSRF-Token ("" with tokens)."""
    return {"email": viewer.email, "name": viewer.name, "role": viewer.role,
            "csrf_token": csrf_token(request)}


@router.get("/api/me/rules")
def get_rules(request: Request, engine: EngineDep, viewer: ViewerDep) -> dict[str, Any]:
    """Your own rules as the gateway applies them, and what each would have decided of your
    last 30 days' recorded mail."""
    base = _base(request, engine)
    rules = _current(engine, request, viewer)
    return _rules_json(engine, base, viewer, rules)


def _current(engine: Any, request: Request, viewer: Viewer) -> tuple[Rule, ...]:
    try:
        return myrules.current_rules(engine, _settings(request), viewer.email)
    except RulesError as exc:
        raise HTTPException(503, {"problems": exc.problems}) from exc


def _checked(body: RulesBody, base: RuleSet, viewer: Viewer) -> tuple[Rule, ...]:
    try:
        return myrules.check_rules(body.rules, base, viewer.email)
    except RulesError as exc:
        raise HTTPException(422, {"problems": exc.problems}) from exc


@router.put("/api/me/rules")
def put_rules(body: RulesBody, request: Request, engine: EngineDep,
              viewer: ViewerDep) -> dict[str, Any]:
    """Replace your own rules; checked exactly like the rules file (422 lists problems)."""
    base = _base(request, engine)
    rules = _checked(body, base, viewer)
    myrules.save_rules(engine, viewer.email, rules)
    return _rules_json(engine, base, viewer, rules)


@router.post("/api/me/rules/preview")
def preview_rules(body: RulesBody, request: Request, engine: EngineDep,
                  viewer: ViewerDep) -> dict[str, Any]:
    """What these rules would have decided of your recorded mail, without saving them."""
    base = _base(request, engine)
    return _rules_json(engine, base, viewer, _checked(body, base, viewer))


def _rules_page(request: Request, engine: Any, viewer: Viewer, *, text: str | None = None,
                rules: tuple[Rule, ...] | None = None, problems: list[str] | None = None,
                saved: bool = False, status_code: int = 200) -> HTMLResponse:
    settings = _settings(request)
    try:
        base = myrules.base_rules(engine, settings)
        if rules is None and not problems:
            rules = myrules.current_rules(engine, settings, viewer.email)
    except RulesError as exc:
        base, problems, status_code = RuleSet(), exc.problems, 503
    preview = (myrules.preview(engine, base, viewer.email, rules)
               if rules is not None else None)
    return render(request, "me_rules.html", viewer, status_code=status_code,
                  text=text if text is not None else myrules.rules_yaml(rules or ()),
                  preview=preview, problems=problems or [], saved=saved,
                  destinations=sorted(base.destinations), categories=CATEGORIES,
                  internal=base.is_internal(viewer.email))


@router.get("/me/rules", response_class=HTMLResponse, include_in_schema=False)
def rules_page(request: Request, engine: EngineDep, viewer: PageViewerDep) -> HTMLResponse:
    return _rules_page(request, engine, viewer)


@router.post("/me/rules", response_class=HTMLResponse, include_in_schema=False)
def rules_form(request: Request, engine: EngineDep, viewer: PageViewerDep,
               rules_yaml: Annotated[str, Form()] = "",
               intent: Annotated[str, Form()] = "save") -> Response:
    try:
        base = myrules.base_rules(engine, _settings(request))
        rules = myrules.check_rules_yaml(rules_yaml, base, viewer.email)
    except RulesError as exc:
        return _rules_page(request, engine, viewer, text=rules_yaml, problems=exc.problems,
                           status_code=422)
    if intent != "save":
        return _rules_page(request, engine, viewer, text=rules_yaml, rules=rules)
    myrules.save_rules(engine, viewer.email, rules)
    return _rules_page(request, engine, viewer, rules=rules, saved=True)


@router.get("/api/me/mail")
def my_mail(engine: EngineDep, viewer: ViewerDep) -> list[dict[str, Any]]:
    """The trace of your mail of the last 30 days that rules took out of your inbox."""
    return [asdict(t) for t in mymail.diverted_mail(engine, viewer.email)]


@router.post("/api/me/corrections", status_code=201)
def correct(body: CorrectionBody, engine: EngineDep, viewer: ViewerDep) -> dict[str, Any]:
    """Record the right category of one of your diverted messages, for the next training."""
    try:
        return asdict(mymail.record_correction(engine, viewer.email, body.message_id,
                                               body.category))
    except mymail.CorrectionError as exc:
        raise HTTPException(exc.status, str(exc)) from exc


@router.get("/me/mail", response_class=HTMLResponse, include_in_schema=False)
def mail_page(request: Request, engine: EngineDep, viewer: PageViewerDep,
              notice: str = "") -> HTMLResponse:
    return render(request, "me_mail.html", viewer,
                  traces=mymail.diverted_mail(engine, viewer.email), days=mymail.MAIL_DAYS,
                  categories=CATEGORIES, stayed_mail=mymail.STAYED_MAIL,
                  notice=notice[:200])


@router.post("/me/mail/corrections", include_in_schema=False)
def correct_form(engine: EngineDep, viewer: PageViewerDep,
                 message_id: Annotated[str, Form()], category: Annotated[str, Form()]
                 ) -> Response:
    try:
        mymail.record_correction(engine, viewer.email, message_id, category)
    except mymail.CorrectionError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    what = ("should have stayed mail" if category == mymail.STAYED_MAIL
            else f"is {category}")
    notice = urlencode({"notice": f"Thanks: noted that {message_id} {what}."})
    return RedirectResponse(f"/me/mail?{notice}", status_code=303)
