"""Mail replies join their thread as comments, unless they would widen who sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlmodel import col

from sluice.core.tables_space import MAIL, Comment, SpacePost
from sluice.space.ingest import SUBJECT_THREAD_DAYS
from sluice.space.posts import get_post
from sluice.space.quoting import reply_text
from tests.space.helpers import ANN, message, post_id_of, publish, space_engine

TEAM = ["ann@example.com", "bob@example.com"]
START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def original(engine: Engine) -> int:
    raw = message("Launch plan", sender="boss@example.com", to=TEAM,
                  message_id="<root@example.com>", text="The plan is attached.")
    return post_id_of(publish(engine, raw, recipients=TEAM, received_at=START))


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (int(conn.execute(select(func.count()).select_from(SpacePost)).scalar_one()),
                int(conn.execute(select(func.count()).select_from(Comment)).scalar_one()))


def test_a_reply_by_in_reply_to_becomes_a_comment_without_the_quote(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    root = original(engine)
    reply = message("Re: Launch plan", sender="ann@example.com",
                    to=["boss@example.com"], cc=["bob@example.com"],
                    message_id="<r1@example.com>", in_reply_to="<root@example.com>",
                    text="Looks good to me.\n\nOn Fri, Boss wrote:\n> The plan is attached.\n")
    published = publish(engine, reply, recipients=[*TEAM[1:], "boss@example.com"],
                        received_at=START + timedelta(hours=1))
    assert published.link.endswith(f"/space/news/{root}#comment-1")
    assert counts(engine) == (1, 1)
    detail = get_post(engine, ANN, root)
    (comment,) = detail.comments
    assert (comment.author, comment.source) == ("ann@example.com", MAIL)
    assert "Looks good to me." in comment.body_html and "attached" not in comment.body_html
    assert detail.last_activity_at == START + timedelta(hours=1)
    with engine.connect() as conn:
        assert conn.execute(select(col(SpacePost.comment_count))).scalar() == 1
    # The same job again is a no-op.
    assert publish(engine, reply, recipients=[*TEAM[1:], "boss@example.com"],
                   received_at=START + timedelta(hours=1)) == published
    assert counts(engine) == (1, 1)


def test_a_reply_to_a_comment_joins_by_references(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    root = original(engine)
    publish(engine, message("Re: Launch plan", sender="ann@example.com", to=TEAM,
                            message_id="<r1@example.com>", in_reply_to="<root@example.com>"),
            recipients=TEAM)
    second = message("Re: Re: Launch plan", sender="bob@example.com", to=["ann@example.com"],
                     message_id="<r2@example.com>", in_reply_to="<unknown@elsewhere>",
                     references=["<root@example.com>", "<r1@example.com>"])
    assert f"/space/news/{root}#comment-" in publish(engine, second, recipients=TEAM).link
    assert counts(engine) == (1, 2)


def test_a_reply_without_headers_joins_by_subject_within_the_window(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    root = original(engine)
    stripped = message("RE: [ext] Launch plan", sender="bob@example.com", to=TEAM)
    near = START + timedelta(days=SUBJECT_THREAD_DAYS - 1)
    assert f"/{root}#comment-" in publish(engine, stripped, recipients=TEAM,
                                           received_at=near).link
    late = message("Re: Launch plan", sender="bob@example.com", to=TEAM, text="much later")
    # Activity was at `near`; a reply long after that starts a new thread.
    far = near + timedelta(days=SUBJECT_THREAD_DAYS + 1)
    assert f"/{root}" not in publish(engine, late, recipients=TEAM, received_at=far).link
    assert counts(engine) == (2, 1)


def test_the_same_subject_without_a_reply_marker_is_a_new_post(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    original(engine)
    weekly = message("Launch plan", sender="boss@example.com", to=TEAM, text="next week's")
    publish(engine, weekly, recipients=TEAM)
    assert counts(engine) == (2, 0)


def test_a_reply_that_widens_the_audience_is_its_own_post_in_the_thread(
        tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    root = original(engine)
    wider = message("Re: Launch plan", sender="ann@example.com",
                    to=["boss@example.com", "cem@example.com"],
                    message_id="<w@example.com>", in_reply_to="<root@example.com>")
    new_id = post_id_of(publish(engine, wider, recipients=["cem@example.com"]))
    assert new_id != root
    assert counts(engine) == (2, 0)
    with engine.connect() as conn:
        thread = conn.execute(select(col(SpacePost.thread_id)).where(
            col(SpacePost.id) == new_id)).scalar()
    assert thread == root
    # A reply to the wider post joins the wider post, not the original thread.
    answer = message("Re: Launch plan", sender="cem@example.com", to=["ann@example.com"],
                     in_reply_to="<w@example.com>", message_id="<w2@example.com>")
    assert f"/{new_id}#comment-" in publish(engine, answer, recipients=["ann@example.com"]).link


def test_a_stranger_cannot_inject_a_comment_into_a_thread(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    root = original(engine)
    hostile = message("Re: Launch plan", sender="eve@example.com", to=["ann@example.com"],
                      in_reply_to="<root@example.com>", text="click here")
    assert post_id_of(publish(engine, hostile, recipients=["ann@example.com"])) != root
    assert get_post(engine, ANN, root).comments == ()


def test_reply_text_drops_common_quote_styles() -> None:
    assert reply_text("Yes.\n\n-----Original Message-----\nFrom: x\nold") == "Yes."
    assert reply_text("Ja.\n\nAm 1. März schrieb Ann <a@x>:\n> alt") == "Ja."
    assert reply_text("Fine.\nFrom: Ann\nSent: Monday\nTo: Bob\n\nold text") == "Fine."
    assert reply_text("inline\n> quoted\nanswer") == "inline\nanswer"
    assert reply_text("> only a quote") == "> only a quote"
