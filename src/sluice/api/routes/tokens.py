"""API tokens of the signed-in person: create (shown once), list, revoke."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from sluice.api import people
from sluice.api.auth import ViewerDep
from sluice.api.deps import EngineDep, RowId

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


class NewToken(BaseModel):
    label: str = Field(min_length=1, max_length=256)


class IssuedToken(BaseModel):
    label: str
    #: The plain token: shown this once, only its hash is kept.
    token: str


class TokenInfo(BaseModel):
    id: int
    label: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


@router.post("", status_code=201)
def create_token(body: NewToken, engine: EngineDep, viewer: ViewerDep) -> IssuedToken:
    return IssuedToken(label=body.label,
                       token=people.issue_token(engine, viewer.email, body.label))


@router.get("")
def tokens(engine: EngineDep, viewer: ViewerDep) -> list[TokenInfo]:
    return [TokenInfo(id=t.id, label=t.label, created_at=t.created_at,
                      last_used_at=t.last_used_at, revoked=t.revoked)
            for t in people.list_tokens(engine, viewer.email)]


@router.delete("/{token_id}", status_code=204)
def revoke(token_id: RowId, engine: EngineDep, viewer: ViewerDep) -> None:
    if not people.revoke_token(engine, viewer.email, token_id):
        raise HTTPException(404, "no such token")
