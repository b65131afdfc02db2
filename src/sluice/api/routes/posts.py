"""Posts over HTTP: a post with its thread, comments, reactions, read marks, attachment
downloads; the /space/{channel}/{post_id} page.

A post the viewer may not see answers 404 — never 403, which would confirm it exists.
Attachments are always downloads (`Content-Disposition: attachment`, nosniff, a sandboxing
CSP), so an HTML or SVG file from a mail never renders in the app's origin; only a post's own
inline images (png, jpeg, gif, webp) are shown inline.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from sluice.api import mixed
from sluice.api.auth import PageViewerDep, ViewerDep
from sluice.api.deps import EngineDep, RowId
from sluice.api.pages import render
from sluice.space import posts
from sluice.space.ingest import attachment_path, channel_path, post_path

router = APIRouter(tags=["posts"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such post, or one you may not see"}}
#: The post page may show remote images, but only after the reader clicked to load them
#: (the sanitised body carries them as data-remote-src, without src).
POST_PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                    "img-src 'self' data: https: http:; object-src 'none'; base-uri 'none'; "
                    "form-action 'self'; frame-ancestors 'none'")
DOWNLOAD_POLICY = "default-src 'none'; sandbox"
_UNSAFE_FILENAME = re.compile(r'[^A-Za-z0-9._ ()\-]')


class AttachmentPublic(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str
    comment_id: int | None = Field(description="set when a mail reply carried it")
    url: str


class CommentPublic(BaseModel):
    id: int
    author: str
    author_name: str
    body_html: str = Field(description="escaped text: safe to insert as HTML")
    source: str = Field(description="web or mail")
    created_at: datetime
    attachments: list[AttachmentPublic]


class ReactionPublic(BaseModel):
    emoji: str
    glyph: str
    count: int
    mine: bool


class PostPublic(BaseModel):
    id: int
    channel: str
    subject: str
    sender: str
    sender_name: str
    category: str
    posted_at: datetime
    last_activity_at: datetime
    thread_id: int
    body_html: str = Field(description="sanitised HTML; remote images carry data-remote-src")
    attachments: list[AttachmentPublic]
    comments: list[CommentPublic]
    reactions: list[ReactionPublic]
    read: bool
    url: str


class CommentIn(BaseModel):
    body: str = Field(min_length=1, max_length=posts.MAX_COMMENT_CHARS,
                      description="plain text; shown escaped")


class ReadPublic(BaseModel):
    post_id: int
    read: bool


class ReactionsPublic(BaseModel):
    post_id: int
    reactions: list[ReactionPublic]


def _attachment(post_id: int, view: posts.AttachmentView) -> AttachmentPublic:
    return AttachmentPublic(filename=view.filename, content_type=view.content_type,
                            size=view.size, sha256=view.sha256, comment_id=view.comment_id,
                            url=attachment_path(post_id, view.sha256))


def _comment(post_id: int, comment: posts.CommentView) -> CommentPublic:
    return CommentPublic(id=comment.id, author=comment.author, author_name=comment.author_name,
                         body_html=comment.body_html, source=comment.source,
                         created_at=comment.created_at,
                         attachments=[_attachment(post_id, a) for a in comment.attachments])


def _reactions(detail: posts.PostDetail) -> list[ReactionPublic]:
    return [ReactionPublic(emoji=r.emoji, glyph=r.glyph, count=r.count, mine=r.mine)
            for r in detail.reactions]


def post_public(detail: posts.PostDetail) -> PostPublic:
    return PostPublic(
        id=detail.id, channel=detail.channel, subject=detail.subject, sender=detail.sender,
        sender_name=detail.sender_name, category=detail.category, posted_at=detail.posted_at,
        last_activity_at=detail.last_activity_at, thread_id=detail.thread_id,
        body_html=detail.body_html,
        attachments=[_attachment(detail.id, a) for a in detail.attachments],
        comments=[_comment(detail.id, c) for c in detail.comments],
        reactions=_reactions(detail), read=detail.read,
        url=post_path(detail.channel, detail.id))


def _not_found(exc: posts.NotFound) -> HTTPException:
    return HTTPException(404, "no such post")


@router.get("/api/posts/{post_id}", summary="A post with its comments, reactions, files",
            responses=NOT_FOUND)
def get_post(engine: EngineDep, viewer: ViewerDep, post_id: RowId) -> PostPublic:
    try:
        return post_public(posts.get_post(engine, viewer, post_id))
    except posts.NotFound as exc:
        raise _not_found(exc) from exc


@router.post("/api/posts/{post_id}/comments", status_code=201, responses=NOT_FOUND,
             summary="Comment on a post (plain text)")
def add_comment(request: Request, engine: EngineDep, viewer: ViewerDep, post_id: RowId,
                comment: CommentIn) -> CommentPublic:
    """The comment is also mailed, as a reply in the thread, to the thread's internal
    participants who still get this mail in their inbox."""
    try:
        return _comment(post_id, mixed.comment(engine, request.app.state.settings, viewer,
                                               post_id, comment.body))
    except posts.NotFound as exc:
        raise _not_found(exc) from exc
    except posts.BadInput as exc:
        raise HTTPException(400, str(exc)) from exc


class SentPublic(BaseModel):
    post_id: int
    queued: bool = Field(description="false when the original message is no longer stored")


@router.post("/api/posts/{post_id}/send-to-me", status_code=202, responses=NOT_FOUND,
             summary="Send me this as mail: the original message to the reader's inbox")
def send_to_me(request: Request, engine: EngineDep, viewer: ViewerDep,
               post_id: RowId) -> SentPublic:
    try:
        queued = mixed.send_to_me(engine, request.app.state.settings, viewer, post_id)
    except posts.NotFound as exc:
        raise _not_found(exc) from exc
    return SentPublic(post_id=post_id, queued=queued)


def _react(engine: EngineDep, viewer: ViewerDep, post_id: int, emoji: str,
           on: bool) -> ReactionsPublic:
    try:
        posts.react(engine, viewer, post_id, emoji, on)
        detail = posts.get_post(engine, viewer, post_id)
    except posts.NotFound as exc:
        raise _not_found(exc) from exc
    except posts.BadInput as exc:
        raise HTTPException(400, str(exc)) from exc
    return ReactionsPublic(post_id=post_id, reactions=_reactions(detail))


@router.put("/api/posts/{post_id}/reactions/{emoji}", responses=NOT_FOUND,
            summary="React to a post; emoji is one of " + ", ".join(posts.REACTIONS))
def put_reaction(engine: EngineDep, viewer: ViewerDep, post_id: RowId,
                 emoji: str) -> ReactionsPublic:
    return _react(engine, viewer, post_id, emoji, True)


@router.delete("/api/posts/{post_id}/reactions/{emoji}", responses=NOT_FOUND,
               summary="Take a reaction back")
def delete_reaction(engine: EngineDep, viewer: ViewerDep, post_id: RowId,
                    emoji: str) -> ReactionsPublic:
    return _react(engine, viewer, post_id, emoji, False)


def _read(engine: EngineDep, viewer: ViewerDep, post_id: int, read: bool) -> ReadPublic:
    try:
        posts.mark_read(engine, viewer, post_id, read)
    except posts.NotFound as exc:
        raise _not_found(exc) from exc
    return ReadPublic(post_id=post_id, read=read)


@router.put("/api/posts/{post_id}/read", responses=NOT_FOUND, summary="Mark a post read")
def put_read(engine: EngineDep, viewer: ViewerDep, post_id: RowId) -> ReadPublic:
    return _read(engine, viewer, post_id, True)


@router.delete("/api/posts/{post_id}/read", responses=NOT_FOUND,
               summary="Mark a post unread")
def delete_read(engine: EngineDep, viewer: ViewerDep, post_id: RowId) -> ReadPublic:
    return _read(engine, viewer, post_id, False)


def content_disposition(kind: str, filename: str) -> str:
    """An ASCII fallback name and the exact name as RFC 5987 UTF-8."""
    fallback = _UNSAFE_FILENAME.sub("_", filename)[:150] or "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/api/posts/{post_id}/attachments/{sha256}", responses={
    **NOT_FOUND, 200: {"description": "the file", "content": {"application/octet-stream": {}}}},
    response_class=Response, summary="Download a file of a post or of its comments")
def get_attachment(engine: EngineDep, viewer: ViewerDep, post_id: RowId,
                   sha256: str) -> Response:
    try:
        file = posts.attachment(engine, viewer, post_id, sha256)
    except posts.NotFound as exc:
        raise HTTPException(404, "no such file") from exc
    kind = "inline" if file.inline else "attachment"
    return Response(file.data, media_type=file.content_type, headers={
        "Content-Disposition": content_disposition(kind, file.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": DOWNLOAD_POLICY,
        "Cache-Control": "private, max-age=3600",
    })


@router.get("/space/{channel}/{post_id}", response_class=HTMLResponse,
            include_in_schema=False)
def post_page(request: Request, engine: EngineDep, viewer: PageViewerDep, channel: str,
              post_id: RowId) -> Response:
    try:
        detail = posts.get_post(engine, viewer, post_id)
    except posts.NotFound:
        return render(request, "space_missing.html", viewer, status_code=404, what="post")
    if detail.channel != channel:  # the link of a post that moved: its current place
        return RedirectResponse(post_path(detail.channel, post_id), status_code=308)
    response = render(request, "post.html", viewer, post=detail, reactions=posts.REACTIONS,
                      channel_path=channel_path, attachment_path=attachment_path)
    response.headers["Content-Security-Policy"] = POST_PAGE_POLICY
    return response
