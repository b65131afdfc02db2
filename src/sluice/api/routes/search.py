"""Search over HTTP: GET /api/search and the /search page. Only visible posts are found;
a query that cannot be searched for is a 400 with the reason, never a 500."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from sluice.api.auth import PageViewerDep, ViewerDep
from sluice.api.deps import EngineDep
from sluice.api.pages import render
from sluice.space import search
from sluice.space.ingest import post_path

router = APIRouter(tags=["search"])

QueryText = Annotated[str, Query(min_length=1, max_length=search.MAX_QUERY_CHARS,
                                 description='words (all must match), "a phrase", prefix*')]
LimitQuery = Annotated[int, Query(ge=1, le=search.MAX_RESULTS)]
OffsetQuery = Annotated[int, Query(ge=0, le=search.MAX_OFFSET)]
ChannelQuery = Annotated[str | None, Query(max_length=200)]


class SearchHitPublic(BaseModel):
    post_id: int
    comment_id: int | None = Field(description="set when the match is in a comment")
    channel: str
    subject: str
    sender: str
    posted_at: datetime
    snippet_html: str = Field(description="escaped text, matches in <mark>")
    url: str


class SearchResultsPublic(BaseModel):
    query: str
    offset: int
    hits: list[SearchHitPublic]


def hit_url(hit: search.SearchHit) -> str:
    anchor = f"#comment-{hit.comment_id}" if hit.comment_id else ""
    return post_path(hit.channel, hit.post_id) + anchor


def _search(engine: EngineDep, viewer: ViewerDep, q: str, limit: int, offset: int,
            channel: str | None) -> list[search.SearchHit]:
    try:
        return search.search(engine, viewer, q, limit=limit, offset=offset, channel=channel)
    except search.QueryError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/api/search", summary="Search posts, comments and attachment names",
            responses={400: {"description": "the query has nothing to search for"}})
def api_search(engine: EngineDep, viewer: ViewerDep, q: QueryText, limit: LimitQuery = 20,
               offset: OffsetQuery = 0, channel: ChannelQuery = None) -> SearchResultsPublic:
    hits = _search(engine, viewer, q, limit, offset, channel)
    return SearchResultsPublic(query=q, offset=offset, hits=[SearchHitPublic(
        post_id=h.post_id, comment_id=h.comment_id, channel=h.channel, subject=h.subject,
        sender=h.sender, posted_at=h.posted_at, snippet_html=h.snippet_html, url=hit_url(h))
        for h in hits])


@router.get("/search", response_class=HTMLResponse, include_in_schema=False)
def search_page(request: Request, engine: EngineDep, viewer: PageViewerDep,
                q: str = "", offset: int = 0) -> HTMLResponse:
    q = q[:search.MAX_QUERY_CHARS]
    offset = max(0, min(offset, search.MAX_OFFSET))
    if not q.strip():
        return render(request, "search.html", viewer, q="", hits=[], error="", offset=0,
                      page_size=20, hit_url=hit_url)
    try:
        hits = search.search(engine, viewer, q, limit=20, offset=offset)
    except search.QueryError as exc:
        return render(request, "search.html", viewer, status_code=400, q=q, hits=[],
                      error=str(exc), offset=offset, page_size=20, hit_url=hit_url)
    return render(request, "search.html", viewer, q=q, hits=hits, error="", offset=offset,
                  page_size=20, hit_url=hit_url)
