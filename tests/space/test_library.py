"""The material library: document names, versions in order, identical files stored once,
inline images and calendar invitations never material, and the post access rule."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from sluice.core.mail import Attachment
from sluice.core.tables_board import Document, DocumentSend, DocumentVersion
from sluice.core.tables_router import Blob
from sluice.space.library import (
    URI_LIST,
    channel_documents,
    document,
    document_key,
    links_in,
    material_files,
    title_key,
    version_file,
)
from sluice.space.viewer import Viewer
from tests.space.board_mail import board_engine, mime, publish

ANN, BOB, CEM = (Viewer("ann@example.com"), Viewer("bob@example.com"),
                 Viewer("cem@example.com"))
PDF = "application/pdf"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", [
    "Pricing.pdf", "pricing.PDF", "Pricing_v2.pdf", "Pricing v3.1.pdf", "Pricing (1).pdf",
    "Pricing FINAL.pdf", "pricing-final-v2.pdf", "Pricing_2024-03-01.pdf",
    "Pricing 20240301.pdf", "Pricing updated 01.03.2024.pdf", "Copy of Pricing.pdf",
    "Pricing - draft.pdf", "Pricing [2].pdf", "Pricing_rev4.pdf", "pricing version 7.pdf",
    "Pricing 2024-03.pdf", "  Pricing.pdf ",
])
def test_versions_of_one_name_share_a_key(name: str) -> None:
    assert document_key(name) == "pricing.pdf"


@pytest.mark.parametrize(("a", "b"), [
    ("Pricing.pdf", "Pricing.xlsx"),          # the extension is part of the identity
    ("Q1 Pricing.pdf", "Q2 Pricing.pdf"),     # quarters are different documents
    ("Pricing EMEA.pdf", "Pricing APAC.pdf"),
    ("Pricing.pdf", "Pricing notes.pdf"),
    ("final.pdf", "draft.pdf"),               # nothing but markers: the name itself counts
])
def test_different_documents_keep_different_keys(a: str, b: str) -> None:
    assert document_key(a) != document_key(b)


def test_names_made_only_of_markers_keep_a_key() -> None:
    assert document_key("final.pdf") == "final.pdf"
    assert document_key("2024-03-01.pdf") == "2024 03 01.pdf"
    assert document_key("README") == "readme"
    assert document_key(".profile") == "profile"


def test_a_name_that_is_a_marker_word_keeps_it_across_versions() -> None:
    # found by the property test below: "update" is a marker word and the document's name
    assert document_key("Update v2.pdf") == document_key("update.pdf") == "update.pdf"
    assert document_key("update final.pdf") == "update.pdf"
    assert document_key("Copy of draft (2).docx") == "copy of.docx"


def test_subject_titles_lose_markers_too() -> None:
    assert title_key("Sales deck (updated) v4 – 2024-03-01") == title_key("Sales deck")
    assert title_key("Sales deck") == "sales deck"


_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=20).filter(
    lambda s: title_key(s) == " ".join(s.split()) and s.strip())


@given(_NAME, st.sampled_from(["pdf", "pptx", "xlsx", "docx"]),
       st.sampled_from([" v2", "_v10", " (3)", " final", "_2024-03-01", " updated",
                        "-draft", " rev 2"]))
def test_a_marker_never_changes_the_key(stem: str, extension: str, marker: str) -> None:
    plain = document_key(f"{stem}.{extension}")
    assert document_key(f"{stem}{marker}.{extension}") == plain
    assert document_key(plain) == plain  # a key is its own key


def test_calendar_invitations_and_empty_files_are_not_material() -> None:
    files = (Attachment("deck.pdf", PDF, 10, "a" * 64), Attachment("invite.ics",
             "text/calendar", 10, "b" * 64), Attachment("empty.txt", "text/plain", 0,
             "c" * 64), Attachment("deck copy.pdf", PDF, 10, "a" * 64))
    assert [f.filename for f in material_files(files)] == ["deck.pdf"]


def test_links_are_found_once_each() -> None:
    text = "See https://x.example/deck, and https://x.example/deck. Or http://y.example/a?b=1"
    assert links_in(text) == ("https://x.example/deck", "http://y.example/a?b=1")


def test_newer_upload_is_a_new_version_and_the_latest_is_first(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    team = ["ann@example.com", "bob@example.com"]
    publish(engine, mime("Pricing", files=[("Pricing_v1.pdf", PDF, b"%PDF one")]),
            category="material", recipients=team, received_at=T0)
    publish(engine, mime("Deck", files=[("Sales deck.pptx", "application/vnd.ms-powerpoint",
                                          b"deck one")]),
            category="material", recipients=team, received_at=T0 + timedelta(hours=1))
    publish(engine, mime("Pricing again", sender="bob@example.com",
                         files=[("Pricing v2 FINAL.pdf", PDF, b"%PDF two")]),
            category="material", recipients=team, received_at=T0 + timedelta(hours=2))
    with engine.connect() as conn:
        docs = channel_documents(conn, ANN, "sales")
        assert [d.name for d in docs] == ["Pricing v2 FINAL.pdf", "Sales deck.pptx"]
        pricing = docs[0]
        assert [v.version for v in pricing.versions] == [2, 1]
        assert pricing.latest.sender == "bob@example.com"
        assert pricing.latest.filename == "Pricing v2 FINAL.pdf"
        assert pricing.versions[1].sender == "ann@example.com"
        latest = version_file(conn, ANN, pricing.id, 2)
        assert latest is not None and latest.data == b"%PDF two"
        first = version_file(conn, ANN, pricing.id, 1)
        assert first is not None and first.data == b"%PDF one"
        assert version_file(conn, ANN, pricing.id, 3) is None
        assert channel_documents(conn, ANN, "other") == []
    engine.dispose()


def test_identical_files_are_stored_once_and_a_resend_is_recorded(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    data = b"%PDF the same bytes"
    for hour, (sender, rcpts) in enumerate([("ann@example.com", ["bob@example.com"]),
                                            ("cem@example.com", ["dia@example.com"])]):
        publish(engine, mime(f"Pricing {hour}", sender=sender,
                             files=[("Pricing.pdf", PDF, data), ("Pricing (1).pdf", PDF, data)]),
                category="material", recipients=rcpts, received_at=T0 + timedelta(hours=hour))
    sha = hashlib.sha256(data).hexdigest()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Blob).where(
            Blob.sha256 == sha)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(DocumentVersion)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(DocumentSend)).scalar_one() == 2
        (seen_by_bob,) = channel_documents(conn, BOB, "sales")
        assert [s.sender for s in seen_by_bob.latest.sends] == ["ann@example.com"]
        assert not seen_by_bob.latest.resent
        # The sender of the re-send sees the version through the re-send only.
        (seen_by_cem,) = channel_documents(conn, CEM, "sales")
        assert [s.sender for s in seen_by_cem.latest.sends] == ["cem@example.com"]
        (seen_by_both,) = channel_documents(conn, Viewer("ann@example.com"), "sales")
        assert seen_by_both.latest.version == 1
    engine.dispose()


def test_inline_images_and_non_material_posts_make_no_documents(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    publish(engine, mime("Hi with logo", logo=True), category="material",
            recipients=["bob@example.com"])
    publish(engine, mime("Minutes", files=[("minutes.pdf", PDF, b"%PDF m")]),
            category="discussion", recipients=["bob@example.com"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Document)).scalar_one() == 0
    engine.dispose()


def test_a_link_only_material_mail_is_a_document_named_by_its_subject(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    publish(engine, mime("Sales deck v3", text="Latest: https://share.example/deck3 ."),
            category="material", recipients=["bob@example.com"], received_at=T0)
    publish(engine, mime("Re: Sales deck (updated)", text="Now: https://share.example/deck4"),
            category="material", recipients=["bob@example.com"], received_at=T0 + timedelta(1))
    with engine.connect() as conn:
        (deck,) = channel_documents(conn, BOB, "sales")
        assert [v.links for v in deck.versions] == [("https://share.example/deck4",),
                                                    ("https://share.example/deck3",)]
        found = version_file(conn, BOB, deck.id, 2)
        assert found is not None and found.version.content_type == URI_LIST
        assert found.data == b"https://share.example/deck4\r\n"
    engine.dispose()


def test_versions_of_posts_a_viewer_cannot_see_are_hidden(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    publish(engine, mime("Pricing", files=[("Pricing.pdf", PDF, b"public")]),
            category="material", recipients=["bob@example.com"], received_at=T0)
    publish(engine, mime("Pricing for Cem", files=[("Pricing v2.pdf", PDF, b"secret")]),
            category="material", recipients=["cem@example.com"],
            received_at=T0 + timedelta(hours=1))
    outsider = Viewer("eve@example.com", role="admin")
    with engine.connect() as conn:
        (for_bob,) = channel_documents(conn, BOB, "sales")
        assert [v.version for v in for_bob.versions] == [1]  # v2 went to Cem only
        assert version_file(conn, BOB, for_bob.id, 2) is None
        assert version_file(conn, CEM, for_bob.id, 2) is not None
        assert channel_documents(conn, outsider, "sales") == []  # admins are no exception
        assert document(conn, outsider, for_bob.id) is None
        assert version_file(conn, outsider, for_bob.id, 1) is None
    engine.dispose()
