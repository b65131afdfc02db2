"""The signed-in person: who they are, their own rules, their own diverted mail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sluice.api.auth import ViewerDep, csrf_token

router = APIRouter(tags=["me"])


@router.get("/api/me")
def me(request: Request, viewer: ViewerDep) -> dict[str, Any]:
    """Who is signed in; `csrf_token` is what scripts send as X-CSRF-Token ("" with tokens)."""
    return {"email": viewer.email, "name": viewer.name, "role": viewer.role,
            "csrf_token": csrf_token(request)}
