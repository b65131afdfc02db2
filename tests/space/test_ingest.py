"""A diverted message becomes a post: body, recipients, attachments stored once, idempotent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.parse import parse
from sluice.core.tables_router import Blob
from sluice.core.tables_space import (
    ENVELOPE,
    HEADER,
    SENDER,
    Channel,
    PostAttachment,
    PostRecipient,
    SpacePost,
)
from sluice.router.post import build_post
from sluice.space.ingest import MissingBlob, ingest
from sluice.space.posts import attachment, get_post
from tests.space.helpers import ANN, BASE_URL, message, post_id_of, publish, space_engine

PDF = b"%PDF-1.4 quarterly numbers " + bytes(range(256))
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")


def test_a_message_becomes_a_post_with_its_channel_and_sanitised_body(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    raw = message("Q3 plan", message_id="<q3@example.com>", to=["team@example.com"],
                  html="<p>Plan <b>here</b><script>alert(1)</script></p>")
    published = publish(engine, raw, channel="sales", recipients=["ann@example.com"])
    post_id = post_id_of(published)
    assert published.link == f"{BASE_URL}/space/sales/{post_id}"
    with engine.connect() as conn:
        post = conn.execute(select(SpacePost).where(col(SpacePost.id) == post_id)).one()
        channels = conn.execute(select(col(Channel.name), col(Channel.open))).all()
    assert channels == [("sales", False)]
    assert (post.subject, post.sender, post.message_id) == (
        "Q3 plan", "boss@example.com", "<q3@example.com>")
    assert post.thread_id == post_id
    assert "<b>here</b>" in post.body_html and "script" not in post.body_html
    assert "Hello team." in post.body_text  # the text part, for search


def test_recipients_are_envelope_header_and_sender(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    raw = message("Office closed", to=["team@example.com"], cc=["cem@example.com"])
    # bob was Bcc'd: only the envelope names him.
    post_id = post_id_of(publish(engine, raw, recipients=["ann@example.com", "bob@example.com"]))
    with engine.connect() as conn:
        rows = dict(conn.execute(select(col(PostRecipient.address), col(PostRecipient.role))
                                 .where(col(PostRecipient.post_id) == post_id)).all())
    assert rows == {"ann@example.com": ENVELOPE, "bob@example.com": ENVELOPE,
                    "team@example.com": HEADER, "cem@example.com": HEADER,
                    "boss@example.com": SENDER}


def test_republishing_the_same_job_changes_nothing(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    raw = message("Once", files=[("plan.pdf", "application/pdf", PDF)])
    first = publish(engine, raw, fingerprint="f" * 64)
    again = publish(engine, raw, fingerprint="f" * 64)
    assert first == again
    with engine.connect() as conn:
        counts = [conn.execute(select(func.count()).select_from(t)).scalar()
                  for t in (SpacePost, PostAttachment, PostRecipient)]
        indexed = conn.execute(text("select count(*) from space_search")).scalar()
    assert counts == [1, 1, 2] and indexed == 1


def test_identical_attachments_are_stored_once(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    one = publish(engine, message("v1", files=[("plan.pdf", "application/pdf", PDF)]))
    two = publish(engine, message("v1 again", files=[("copy.pdf", "application/pdf", PDF)]))
    sha = hashlib.sha256(PDF).hexdigest()
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(Blob)
                              .where(col(Blob.sha256) == sha)).scalar()
    assert stored == 1
    for published in (one, two):
        file = attachment(engine, ANN, post_id_of(published), sha)
        assert file.data == PDF and file.content_type == "application/pdf"
        assert not file.inline


def test_inline_images_are_shown_but_are_not_attachments(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    raw = message("Signed", html='<p>Hi</p><img src="cid:logo@example.com" alt="logo">'
                  '<img src="https://tracker.example/pixel.gif">',
                  inline=[("logo@example.com", "image/png", PNG)])
    post_id = post_id_of(publish(engine, raw))
    detail = get_post(engine, ANN, post_id)
    assert detail.attachments == ()
    sha = hashlib.sha256(PNG).hexdigest()
    assert f'src="/api/posts/{post_id}/attachments/{sha}"' in detail.body_html
    assert 'data-remote-src="https://tracker.example/pixel.gif"' in detail.body_html
    assert "tracker.example/pixel.gif\"" not in detail.body_html.replace(
        'data-remote-src="https://tracker.example/pixel.gif"', "")
    logo = attachment(engine, ANN, post_id, sha)
    assert logo.inline and logo.content_type == "image/png" and logo.data == PNG


def test_the_same_message_in_two_transactions_is_one_post_for_both(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    raw = message("Split", message_id="<split@example.com>", to=["all@example.com"])
    first = publish(engine, raw, recipients=["ann@example.com"], fingerprint="1" * 64)
    second = publish(engine, raw, recipients=["bob@example.com"], fingerprint="2" * 64)
    assert first == second
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SpacePost)).scalar() == 1
        addresses = set(conn.execute(select(col(PostRecipient.address))).scalars())
    assert {"ann@example.com", "bob@example.com"} <= addresses


def test_a_forged_message_id_does_not_merge_into_someone_elses_post(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    publish(engine, message("Secret", message_id="<s@example.com>", text="salaries"),
            recipients=["ann@example.com"])
    forged = message("Hi", sender="eve@example.com", message_id="<s@example.com>", text="x",
                     to=["eve@example.com"])
    publish(engine, forged, recipients=["eve@example.com"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SpacePost)).scalar() == 2
        first_readers = set(conn.execute(select(col(PostRecipient.address)).where(
            col(PostRecipient.post_id) == 1)).scalars())
    assert "eve@example.com" not in first_readers


def test_a_missing_blob_fails_the_attempt(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    raw = message("Lost")
    post = build_post(parse(raw), None, destination="d", fingerprint="9" * 64,
                      recipients=("ann@example.com",), base_url=BASE_URL)
    with pytest.raises(MissingBlob), engine.begin() as conn:
        ingest(conn, "news", post, "0" * 64)
    with engine.begin() as conn:
        insert_ignoring_conflicts(conn, Blob.__table__,  # type: ignore[attr-defined]
                                  [{"sha256": "0" * 64, "size": len(raw), "data": raw,
                                    "created_at": post.received_at}], ["sha256"])
        assert ingest(conn, "news", post, "0" * 64).created


def test_a_post_that_came_in_meanwhile_is_finished_not_written_twice(tmp_path: Path) -> None:
    """A new post's INSERT carries an id asked for first; if the same (channel, fingerprint)
    was written in between (another worker), the insert does nothing and the existing row is
    finished as before: one row, its own id in its thread and body."""
    from sluice.core.rawsql import Raw
    from sluice.space.ingest import _add_post, prepare_mail

    engine = space_engine(tmp_path)
    raw = message("Race", message_id="<race@example.com>",
                  html="<p>see <img src=\"cid:logo\"></p>", inline=[("logo", "image/png", PNG)])
    first = post_id_of(publish(engine, raw, channel="news", fingerprint="f" * 64))
    post = build_post(parse(raw), None, destination="space-dest", fingerprint="f" * 64,
                      recipients=("ann@example.com",), base_url=BASE_URL)
    prepared = prepare_mail(post, parse(raw), hashlib.sha256(raw).hexdigest())
    with engine.begin() as conn:  # straight to the write, as if the look-up had missed it
        conn.execute(text("INSERT INTO space_channel (name, title, description, open, "
                          "created_at) VALUES ('news', 'news', '', 0, '2024-03-01') "
                          "ON CONFLICT (name) DO NOTHING"))
        again = _add_post(conn, Raw(conn), "news", prepared, None, None)
    assert again.post_id == first
    with engine.connect() as conn:
        rows = conn.execute(select(SpacePost).where(col(SpacePost.fingerprint) == "f" * 64)).all()
    assert len(rows) == 1 and rows[0].thread_id == first
    assert f"/api/posts/{first}/attachments/" in rows[0].body_html
    assert prepared.token not in rows[0].body_html
