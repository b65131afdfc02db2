"""Channels over HTTP: the list with unread counts, a channel's posts page by page, and the
admin's channel settings; the /space and /space/{channel} pages.

A channel the viewer cannot read anything in answers 404 like a channel that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from sluice.api.auth import AdminDep, PageViewerDep, ViewerDep
from sluice.api.deps import EngineDep
from sluice.api.pages import render
from sluice.space import channels, posts
from sluice.space.ingest import channel_path, post_path
from sluice.space.viewer import Viewer

router = APIRouter(tags=["channels"])

CursorQuery = Annotated[str | None, Query(max_length=200,
                                          description="next_cursor of the previous page")]
LimitQuery = Annotated[int, Query(ge=1, le=posts.MAX_PAGE_SIZE)]


class ChannelPublic(BaseModel):
    name: str
    title: str
    description: str
    open: bool = Field(description="every signed-in person may read it")
    posts: int = Field(description="posts the viewer may see")
    unread: int = Field(description="of those, not read since their last activity")
    url: str


class PostSummaryPublic(BaseModel):
    id: int
    channel: str
    subject: str
    sender: str
    sender_name: str
    category: str
    excerpt: str
    posted_at: datetime
    comment_count: int
    attachment_count: int
    unread: bool
    url: str


class ChannelPagePublic(BaseModel):
    channel: str
    title: str
    posts: list[PostSummaryPublic]
    next_cursor: str | None = Field(description="pass as `before` for older posts")


class ChannelSettings(BaseModel):
    """An admin creates a channel or changes it; fields left out stay as they are."""

    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    open: bool | None = None


def channel_public(view: channels.ChannelView) -> ChannelPublic:
    return ChannelPublic(name=view.name, title=view.title, description=view.description,
                         open=view.open, posts=view.posts, unread=view.unread,
                         url=channel_path(view.name))


def summary_public(post: posts.PostSummary) -> PostSummaryPublic:
    return PostSummaryPublic(
        id=post.id, channel=post.channel, subject=post.subject, sender=post.sender,
        sender_name=post.sender_name, category=post.category, excerpt=post.excerpt,
        posted_at=post.posted_at, comment_count=post.comment_count,
        attachment_count=post.attachment_count, unread=post.unread,
        url=post_path(post.channel, post.id))


def _page(engine: EngineDep, viewer: Viewer, name: str, limit: int,
          before: str | None) -> posts.ChannelPage:
    try:
        return posts.channel_page(engine, viewer, name, limit=limit, before=before)
    except posts.NotFound as exc:
        raise HTTPException(404, "no such channel") from exc
    except posts.BadInput as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/api/channels", summary="Channels the viewer can read, with unread counts")
def list_channels(engine: EngineDep, viewer: ViewerDep) -> list[ChannelPublic]:
    return [channel_public(v) for v in channels.list_channels(engine, viewer)]


@router.get("/api/channels/{name}/posts", summary="A channel's posts, newest first",
            responses={404: {"description": "no such channel, or nothing in it for you"}})
def channel_posts(engine: EngineDep, viewer: ViewerDep, name: str,
                  before: CursorQuery = None,
                  limit: LimitQuery = posts.PAGE_SIZE) -> ChannelPagePublic:
    page = _page(engine, viewer, name, limit, before)
    return ChannelPagePublic(channel=page.channel, title=page.title,
                             posts=[summary_public(p) for p in page.posts],
                             next_cursor=page.next_cursor)


@router.put("/api/channels/{name}", summary="Create or change a channel (admins)")
def put_channel(engine: EngineDep, viewer: AdminDep, name: str,
                settings: ChannelSettings) -> ChannelPublic:
    if name != name.strip():  # creating would strip it: the answer would name another channel
        raise HTTPException(400, "a channel name has no leading or trailing spaces")
    try:
        known = {c.name for c in channels.list_channels(engine, viewer)}
        if name not in known:
            channels.create_channel(engine, viewer, name)
        if settings.title is not None or settings.description is not None:
            current = channels.get_channel(engine, viewer, name)
            channels.retitle(engine, viewer, name,
                             settings.title if settings.title is not None else current.title,
                             settings.description)
        if settings.open is not None:
            channels.set_open(engine, viewer, name, settings.open)
        return channel_public(channels.get_channel(engine, viewer, name))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/space", response_class=HTMLResponse, include_in_schema=False)
def space_page(request: Request, engine: EngineDep, viewer: PageViewerDep) -> HTMLResponse:
    views = channels.list_channels(engine, viewer)
    return render(request, "space.html", viewer, channels=views, channel_path=channel_path)


@router.get("/space/{name}", response_class=HTMLResponse, include_in_schema=False)
def channel_page(request: Request, engine: EngineDep, viewer: PageViewerDep, name: str,
                 before: CursorQuery = None) -> HTMLResponse:
    try:
        page = posts.channel_page(engine, viewer, name, before=before)
    except posts.NotFound:
        return render(request, "space_missing.html", viewer, status_code=404,
                      what="channel")
    except posts.BadInput as exc:
        raise HTTPException(400, str(exc)) from exc
    return render(request, "channel.html", viewer, page=page, post_path=post_path,
                  channel_path=channel_path)
