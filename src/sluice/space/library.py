"""The material library: the files of `material` posts, collected per channel as documents
with versions, so people find the latest deck instead of digging through mail.

A document is every file of a channel with the same normalised name (`document_key`): version
markers, copy counters and dates are not part of a document's identity; the extension is. The
same bytes sent again are not a new version (the re-send is recorded). Who may see a version
is whoever may see one of the posts that carried it: the post access rule, applied at query
time.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlmodel import col

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.mail import Attachment
from sluice.core.tables import as_utc
from sluice.core.tables_board import Document, DocumentSend, DocumentVersion
from sluice.core.tables_router import Blob, blob_row
from sluice.core.tables_space import SpacePost
from sluice.space.access import visible_posts_clause
from sluice.space.hooks import NewPost
from sluice.space.parts import message_parts
from sluice.space.viewer import Viewer

MATERIAL = "material"
#: What a link-only version is served as.
URI_LIST = "text/uri-list"
#: Parts that are never material even when attached: calendar invitations.
_NOT_MATERIAL_TYPES = frozenset({"text/calendar", "application/ics"})

_EXTENSION = re.compile(r"\.([a-z0-9]{1,8})$")
_DATE_PATTERNS = (
    # 2024-03-01, 2024_03_01, 2024.03.01, 2024 03 01, 20240301
    r"(?:19|20)\d{2}[-. ]?(?:0[1-9]|1[0-2])[-. ]?(?:0[1-9]|[12]\d|3[01])",
    # 01.03.2024, 1-3-2024, 01 03 2024
    r"(?:0?[1-9]|[12]\d|3[01])[-. ](?:0?[1-9]|1[0-2])[-. ](?:19|20)\d{2}",
    # 2024-03 (a month)
    r"(?:19|20)\d{2}[-. ](?:0[1-9]|1[0-2])",
)
_DATE = re.compile(r"(?<![\w])(?:" + "|".join(_DATE_PATTERNS) + r")(?![\w])")
_VERSION = re.compile(
    r"(?<![\w])(?:v|ver|version|rev|revision)[ .]?\d+(?:\.\d+)*[a-z]?(?![\w])")
_COPY_COUNTER = re.compile(r"\(\s*\d+\s*\)|\[\s*\d+\s*\]")
_MARKER_WORDS = re.compile(
    r"(?<![\w])(?:final|draft|updated|update|latest|revised|clean|copy of|copy)(?![\w])")
_WORD = re.compile(r"\w+")
_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+")


def split_extension(filename: str) -> tuple[str, str]:
    """(stem, lower-case extension without the dot); a name without one gives ("name", "")."""
    name = unicodedata.normalize("NFKC", filename).strip().lower()
    match = _EXTENSION.search(name)
    if match is None or match.start() == 0:
        return name, ""
    return name[: match.start()], match.group(1)


def title_key(title: str) -> str:
    """A name without version markers, copy counters, dates, "final"/"updated", case and
    punctuation: what stays the same from one version of a document to the next."""
    text = unicodedata.normalize("NFKC", title).lower().replace("_", " ")
    # Versions, dates and copy counters are never a name; marker words may be one ("Update
    # v2.pdf" is a version of "Update.pdf"). A name of marker words only is known by its
    # first ("Update final.pdf" is "Update.pdf" too); a name of nothing but versions and
    # dates ("2024-03-01.pdf") by itself.
    unmarked = _COPY_COUNTER.sub(" ", _VERSION.sub(" ", _DATE.sub(" ", text)))
    if words := _WORD.findall(_MARKER_WORDS.sub(" ", unmarked)):
        return " ".join(words)
    if first_marker := _MARKER_WORDS.search(unmarked):
        return " ".join(_WORD.findall(first_marker.group(0)))
    return " ".join(_WORD.findall(text))


def document_key(filename: str) -> str:
    """The identity of the document a file is a version of: normalised name + extension."""
    stem, extension = split_extension(filename)
    key = title_key(stem)
    return f"{key}.{extension}" if extension else key


def material_files(attachments: Iterable[Attachment]) -> tuple[Attachment, ...]:
    """The attachments that are material: not calendar invitations, not empty, each file once.

    Inline images never get here: the parser does not count them as attachments.
    """
    seen: set[str] = set()
    files: list[Attachment] = []
    for attachment in attachments:
        if attachment.content_type.lower() in _NOT_MATERIAL_TYPES or attachment.size == 0:
            continue
        if attachment.filename.lower().endswith(".ics") or attachment.sha256 in seen:
            continue
        seen.add(attachment.sha256)
        files.append(attachment)
    return tuple(files)


def links_in(text: str) -> tuple[str, ...]:
    """The distinct http(s) links of a text, in order of appearance."""
    found: dict[str, None] = {}
    for url in _URL.findall(text):
        found.setdefault(url.rstrip(".,;:!?"), None)
    return tuple(found)


# --- the hook ---------------------------------------------------------------------------


def library_hook(conn: Connection, new: NewPost) -> None:
    """Each file of a material post becomes a version of its document; a material mail with
    links only becomes a version of the document named by its subject."""
    if new.post.category != MATERIAL:
        return
    files = material_files(new.mail.attachments)
    if files:
        _store_missing_blobs(conn, new, files)
        for attachment in files:
            _add_version(conn, new, name=attachment.filename,
                         key=document_key(attachment.filename), sha256=attachment.sha256,
                         filename=attachment.filename, content_type=attachment.content_type,
                         size=attachment.size, links=())
        return
    links = links_in(new.mail.text)
    subject = new.mail.thread.normalized_subject or new.post.subject
    if links and title_key(subject):
        digest = hashlib.sha256("\n".join(sorted(links)).encode()).hexdigest()
        _add_version(conn, new, name=new.post.subject, key=title_key(subject), sha256=digest,
                     filename="", content_type=URI_LIST, size=0, links=links)


def _store_missing_blobs(conn: Connection, new: NewPost, files: tuple[Attachment, ...]) -> None:
    """Attachment bytes as blob rows, each distinct file once (the ingest may have stored
    them already; the insert ignores those)."""
    wanted = {a.sha256 for a in files}
    present = set(conn.execute(select(col(Blob.sha256)).where(
        col(Blob.sha256).in_(wanted))).scalars())
    if wanted <= present:
        return
    now = datetime.now(UTC)
    found = message_parts(new.mail).attachments
    rows = [blob_row(data, now, sha256=sha) for sha, data in found.items()
            if sha in wanted - present]
    insert_ignoring_conflicts(conn, Blob.__table__, rows, ["sha256"])  # type: ignore[attr-defined]


def _add_version(conn: Connection, new: NewPost, *, name: str, key: str, sha256: str,
                 filename: str, content_type: str, size: int, links: tuple[str, ...]) -> None:
    sent_at = new.post.received_at
    insert_ignoring_conflicts(conn, Document.__table__,  # type: ignore[attr-defined]
                              [{"channel": new.channel, "key": key, "name": name,
                                "created_at": sent_at}], ["channel", "key"])
    document_id = conn.execute(select(col(Document.id)).where(
        col(Document.channel) == new.channel, col(Document.key) == key)).scalar_one()
    version_id = conn.execute(select(col(DocumentVersion.id)).where(
        col(DocumentVersion.document_id) == document_id,
        col(DocumentVersion.sha256) == sha256)).scalar_one_or_none()
    if version_id is None:
        number = conn.execute(select(func.coalesce(func.max(DocumentVersion.version), 0)).where(
            col(DocumentVersion.document_id) == document_id)).scalar_one() + 1
        table = DocumentVersion.__table__  # type: ignore[attr-defined]
        conn.execute(table.insert().values(
            document_id=document_id, version=number, post_id=new.post_id, sha256=sha256,
            filename=filename, content_type=content_type, size=size, links="\n".join(links),
            sender=new.post.sender, sender_name=new.post.sender_name, sent_at=sent_at))
        version_id = conn.execute(select(col(DocumentVersion.id)).where(
            col(DocumentVersion.document_id) == document_id,
            col(DocumentVersion.version) == number)).scalar_one()
        conn.execute(update(Document).where(col(Document.id) == document_id).values(name=name))
    insert_ignoring_conflicts(conn, DocumentSend.__table__,  # type: ignore[attr-defined]
                              [{"version_id": version_id, "post_id": new.post_id,
                                "sender": new.post.sender, "sent_at": sent_at}],
                              ["version_id", "post_id"])


# --- queries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """One post that carried a version: the first send or a re-send."""

    post_id: int
    sender: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class VersionView:
    version: int
    filename: str
    content_type: str
    size: int
    sha256: str
    links: tuple[str, ...]
    sender: str
    sender_name: str
    sent_at: datetime
    #: The posts the viewer can see that carried this version, first send first.
    sends: tuple[Send, ...]

    @property
    def resent(self) -> bool:
        return len(self.sends) > 1


@dataclass(frozen=True, slots=True)
class DocumentView:
    id: int
    channel: str
    name: str
    #: The versions the viewer can see, newest first; never empty.
    versions: tuple[VersionView, ...]

    @property
    def latest(self) -> VersionView:
        return self.versions[0]


def _visible_versions(conn: Connection, viewer: Viewer, *conditions: Any
                      ) -> list[DocumentView]:
    """Documents with the versions (and sends) the viewer may see, latest document first."""
    rows: list[Any] = conn.execute(
        select(*(col(c) for c in (
            Document.id, Document.channel, Document.name, DocumentVersion.version,
            DocumentVersion.filename, DocumentVersion.content_type, DocumentVersion.size,
            DocumentVersion.sha256, DocumentVersion.links, DocumentVersion.sender,
            DocumentVersion.sender_name, DocumentVersion.sent_at, DocumentSend.post_id,
            DocumentSend.sender, DocumentSend.sent_at)))
        .join(DocumentVersion, col(DocumentVersion.document_id) == col(Document.id))
        .join(DocumentSend, col(DocumentSend.version_id) == col(DocumentVersion.id))
        .join(SpacePost, col(SpacePost.id) == col(DocumentSend.post_id))
        .where(visible_posts_clause(viewer), *conditions)
        .order_by(col(DocumentSend.sent_at), col(DocumentSend.post_id))
    ).all()  # type: ignore[assignment]
    documents: dict[int, tuple[str, str]] = {}
    versions: dict[tuple[int, int], dict[str, object]] = {}
    sends: dict[tuple[int, int], list[Send]] = {}
    for (doc_id, channel, name, number, filename, ctype, size, sha, links, sender, sender_name,
         sent_at, post_id, send_sender, send_at) in rows:
        documents[doc_id] = (channel, name)
        versions[(doc_id, number)] = {
            "version": number, "filename": filename, "content_type": ctype, "size": size,
            "sha256": sha, "links": tuple(links.split("\n")) if links else (),
            "sender": sender, "sender_name": sender_name, "sent_at": as_utc(sent_at)}
        sends.setdefault((doc_id, number), []).append(Send(post_id, send_sender, as_utc(send_at)))
    by_document: dict[int, list[VersionView]] = {}
    for (doc_id, number), fields in versions.items():
        by_document.setdefault(doc_id, []).append(
            VersionView(sends=tuple(sends[(doc_id, number)]), **fields))  # type: ignore[arg-type]
    views = [
        DocumentView(doc_id, documents[doc_id][0], documents[doc_id][1],
                     tuple(sorted(found, key=lambda v: (v.sent_at, v.version), reverse=True)))
        for doc_id, found in by_document.items()
    ]
    views.sort(key=lambda d: (d.latest.sent_at, d.id), reverse=True)
    return views



def channel_documents(conn: Connection, viewer: Viewer, channel: str) -> list[DocumentView]:
    """A channel's documents the viewer may see, the most recently updated first."""
    return _visible_versions(conn, viewer, col(Document.channel) == channel)


def document(conn: Connection, viewer: Viewer, document_id: int) -> DocumentView | None:
    """A document with its visible versions; None when the viewer may see none of them."""
    found = _visible_versions(conn, viewer, col(Document.id) == document_id)
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class VersionFile:
    version: VersionView
    data: bytes


def version_file(conn: Connection, viewer: Viewer, document_id: int, number: int
                 ) -> VersionFile | None:
    """The bytes of one version (a link-only version: its links as a text/uri-list); None
    when the viewer may not see it or the file is missing."""
    found = document(conn, viewer, document_id)
    if found is None:
        return None
    version = next((v for v in found.versions if v.version == number), None)
    if version is None:
        return None
    if version.links:
        return VersionFile(version, ("\r\n".join(version.links) + "\r\n").encode())
    data = conn.execute(select(col(Blob.data)).where(
        col(Blob.sha256) == version.sha256)).scalar_one_or_none()
    return VersionFile(version, bytes(data)) if data is not None else None
