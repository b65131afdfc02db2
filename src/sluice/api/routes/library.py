"""The material library over HTTP: documents per channel, their versions, downloads, and the
/library page. Anything the viewer may not see is 404, never 403: its existence is not told.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import Engine

from sluice.api.auth import PageViewerDep, ViewerDep
from sluice.api.deps import EngineDep, RowId
from sluice.api.pages import render
from sluice.space import library
from sluice.space.channels import list_channels
from sluice.space.ingest import post_path
from sluice.space.viewer import Viewer

router = APIRouter(tags=["library"])


class SendOut(BaseModel):
    post_id: int
    post_url: str
    sender: str
    sent_at: datetime


class VersionOut(BaseModel):
    version: int
    filename: str
    content_type: str
    size: int
    sha256: str
    links: list[str]
    sender: str
    sender_name: str
    sent_at: datetime
    #: The first send and every re-send of the same bytes the viewer may see.
    sends: list[SendOut]
    download_url: str


class DocumentOut(BaseModel):
    id: int
    channel: str
    name: str
    latest: VersionOut
    #: Newest first.
    versions: list[VersionOut]


def document_out(found: library.DocumentView) -> DocumentOut:
    versions = [VersionOut(
        version=v.version, filename=v.filename, content_type=v.content_type, size=v.size,
        sha256=v.sha256, links=list(v.links), sender=v.sender, sender_name=v.sender_name,
        sent_at=v.sent_at,
        sends=[SendOut(post_id=s.post_id, post_url=post_path(found.channel, s.post_id),
                       sender=s.sender, sent_at=s.sent_at) for s in v.sends],
        download_url=f"/api/documents/{found.id}/versions/{v.version}/download",
    ) for v in found.versions]
    return DocumentOut(id=found.id, channel=found.channel, name=found.name, latest=versions[0],
                       versions=versions)


def visible_channel_names(engine: Engine, viewer: Viewer) -> list[str]:
    return [c.name for c in list_channels(engine, viewer)]


def _require_channel(engine: Engine, viewer: Viewer, name: str) -> None:
    if name not in visible_channel_names(engine, viewer):
        raise HTTPException(404, "no such channel")


@router.get("/api/channels/{name}/documents")
def channel_documents(name: str, engine: EngineDep, viewer: ViewerDep) -> list[DocumentOut]:
    """A channel's documents, the most recently updated first, each with its versions."""
    _require_channel(engine, viewer, name)
    with engine.connect() as conn:
        return [document_out(d) for d in library.channel_documents(conn, viewer, name)]


@router.get("/api/documents/{document_id}")
def document(document_id: RowId, engine: EngineDep, viewer: ViewerDep) -> DocumentOut:
    """One document with the versions the viewer may see, newest first."""
    with engine.connect() as conn:
        found = library.document(conn, viewer, document_id)
    if found is None:
        raise HTTPException(404, "no such document")
    return document_out(found)


def _disposition(filename: str) -> str:
    """attachment; with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@router.get("/api/documents/{document_id}/versions/{number}/download")
def download(document_id: RowId, number: RowId, engine: EngineDep, viewer: ViewerDep) -> Response:
    """The file of one version (a link-only version: its links as text/uri-list)."""
    with engine.connect() as conn:
        found = library.version_file(conn, viewer, document_id, number)
    if found is None:
        raise HTTPException(404, "no such version")
    version = found.version
    filename = version.filename or f"document-{document_id}-v{number}.uri"
    return Response(found.data, media_type=version.content_type or "application/octet-stream",
                    headers={"Content-Disposition": _disposition(filename),
                             "X-Content-Type-Options": "nosniff",
                             "Cache-Control": "private, no-store"})


@router.get("/library", response_class=HTMLResponse, include_in_schema=False)
def library_page(request: Request, engine: EngineDep, viewer: PageViewerDep,
                 channel: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    names = visible_channel_names(engine, viewer)
    shown = [channel] if channel in names else names
    with engine.connect() as conn:
        sections = [(name, [document_out(d) for d in library.channel_documents(
            conn, viewer, name)]) for name in shown]
    return render(request, "library.html", viewer, channels=names, selected=channel,
                  sections=[(name, docs) for name, docs in sections if docs or channel])
