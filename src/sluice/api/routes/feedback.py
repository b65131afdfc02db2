"""The feedback board over HTTP: items with filters, status and owner changes, and the
/feedback page. Anyone who may see an item's post may change it (see `space.feedback`);
anything else is 404. Cookie-authenticated changes need the CSRF token (`api.auth`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from sluice.api.auth import PageViewerDep, ViewerDep
from sluice.api.deps import EngineDep, RowId
from sluice.api.pages import render
from sluice.api.routes.library import visible_channel_names
from sluice.core.tables_board import FEEDBACK_STATUSES
from sluice.space import feedback
from sluice.space.ingest import post_path

router = APIRouter(tags=["feedback"])

StatusQuery = Annotated[str, Query(max_length=16, description="one of " +
                                   ", ".join(FEEDBACK_STATUSES))]
DomainQuery = Annotated[str, Query(max_length=255, description="the sender's mail domain")]
ChannelQuery = Annotated[str, Query(max_length=200)]


class ChangeOut(BaseModel):
    actor: str
    field: str
    old: str
    new: str
    at: datetime


class FeedbackOut(BaseModel):
    id: int
    post_id: int
    post_url: str
    channel: str
    title: str
    status: str
    owner: str
    sender: str
    sender_name: str
    sender_domain: str
    excerpt: str
    comment_count: int
    created_at: datetime
    updated_at: datetime
    history: list[ChangeOut]


class FeedbackChange(BaseModel):
    """Fields left out stay as they are; owner "" removes the owner."""

    status: str | None = Field(default=None, max_length=16)
    owner: str | None = Field(default=None, max_length=512)


def item_out(item: feedback.FeedbackView) -> FeedbackOut:
    return FeedbackOut(
        id=item.id, post_id=item.post_id, post_url=post_path(item.channel, item.post_id),
        channel=item.channel, title=item.title, status=item.status, owner=item.owner,
        sender=item.sender, sender_name=item.sender_name, sender_domain=item.sender_domain,
        excerpt=item.excerpt, comment_count=item.comment_count, created_at=item.created_at,
        updated_at=item.updated_at,
        history=[ChangeOut(actor=c.actor, field=c.field, old=c.old, new=c.new, at=c.at)
                 for c in item.history])


def _check_status(status: str) -> None:
    if status and status not in FEEDBACK_STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(FEEDBACK_STATUSES)}")


@router.get("/api/feedback")
def list_feedback(engine: EngineDep, viewer: ViewerDep, status: StatusQuery = "",
                  domain: DomainQuery = "", channel: ChannelQuery = "") -> list[FeedbackOut]:
    """The items the viewer may see, most recently changed first."""
    _check_status(status)
    with engine.connect() as conn:
        items = feedback.feedback_items(conn, viewer, status=status, domain=domain,
                                        channel=channel)
    return [item_out(i) for i in items]


@router.get("/api/feedback/{item_id}")
def get_feedback(item_id: RowId, engine: EngineDep, viewer: ViewerDep) -> FeedbackOut:
    """One item with its history of status and owner changes."""
    with engine.connect() as conn:
        item = feedback.feedback_item(conn, viewer, item_id)
    if item is None:
        raise HTTPException(404, "no such feedback item")
    return item_out(item)


@router.patch("/api/feedback/{item_id}")
def change_feedback(item_id: RowId, body: FeedbackChange, engine: EngineDep,
                    viewer: ViewerDep) -> FeedbackOut:
    """Set status and/or owner; the change is recorded with who made it and when."""
    try:
        with engine.begin() as conn:
            item = feedback.change_item(conn, viewer, item_id, status=body.status,
                                        owner=body.owner)
    except feedback.FeedbackError as exc:
        raise HTTPException(422, str(exc)) from exc
    if item is None:
        raise HTTPException(404, "no such feedback item")
    return item_out(item)


@router.get("/feedback", response_class=HTMLResponse, include_in_schema=False)
def feedback_page(request: Request, engine: EngineDep, viewer: PageViewerDep,
                  status: StatusQuery = "", domain: DomainQuery = "",
                  channel: ChannelQuery = "") -> HTMLResponse:
    status = status if status in FEEDBACK_STATUSES else ""
    with engine.connect() as conn:
        items = [item_out(i) for i in feedback.feedback_items(
            conn, viewer, status=status, domain=domain, channel=channel)]
        domains = feedback.feedback_domains(conn, viewer)
    columns = [(s, [i for i in items if i.status == s]) for s in FEEDBACK_STATUSES
               if not status or s == status]
    return render(request, "feedback.html", viewer, columns=columns, statuses=FEEDBACK_STATUSES,
                  domains=domains, channels=visible_channel_names(engine, viewer),
                  selected={"status": status, "domain": domain, "channel": channel})
