"""Channel pages newest first with keyset pages, unread counts, comments, reactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sluice.space.channels import create_channel, list_channels, retitle, set_open
from sluice.space.posts import (
    BadInput,
    add_comment,
    channel_page,
    get_post,
    mark_read,
    react,
)
from sluice.space.viewer import Viewer
from tests.space.helpers import (
    ADMIN_VIEWER,
    ANN,
    BOB,
    message,
    post_id_of,
    publish,
    space_engine,
)

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
BOTH = ["ann@example.com", "bob@example.com"]


def test_pages_walk_newest_first_without_gaps_or_repeats(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    ids = [post_id_of(publish(engine, message(f"update {n}"), recipients=BOTH,
                              received_at=T0 + timedelta(minutes=n // 2)))
           for n in range(7)]  # pairs share a timestamp: the id breaks the tie
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = channel_page(engine, ANN, "news", limit=3, before=cursor)
        seen += [p.id for p in page.posts]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(ids, key=lambda i: (T0 + timedelta(minutes=(i - 1) // 2), i),
                          reverse=True)
    with pytest.raises(BadInput):
        channel_page(engine, ANN, "news", before="not-a-cursor")


def test_unread_counts_follow_reads_and_new_comments(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    first = post_id_of(publish(engine, message("one"), recipients=BOTH, received_at=T0))
    publish(engine, message("two"), recipients=BOTH, received_at=T0 + timedelta(hours=1))
    publish(engine, message("three"), channel="other", recipients=["ann@example.com"])

    def unread(viewer: Viewer) -> dict[str, tuple[int, int]]:
        return {c.name: (c.posts, c.unread) for c in list_channels(engine, viewer)}

    assert unread(ANN) == {"news": (2, 2), "other": (1, 1)}
    assert unread(BOB) == {"news": (2, 2)}
    mark_read(engine, ANN, first, True)
    assert unread(ANN)["news"] == (2, 1)
    assert [p.unread for p in channel_page(engine, ANN, "news").posts] == [True, False]
    assert get_post(engine, ANN, first).read
    # Bob comments: the post is unread again for Ann, read for Bob who wrote.
    add_comment(engine, BOB, first, "seen it")
    assert unread(ANN)["news"] == (2, 2)
    assert unread(BOB)["news"] == (2, 1)
    mark_read(engine, BOB, first, False)
    assert unread(BOB)["news"] == (2, 2)


def test_comments_are_plain_text_escaped(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    post_id = post_id_of(publish(engine, message("one"), recipients=BOTH))
    add_comment(engine, ANN, post_id, "<img src=x onerror=alert(1)> & <b>bold</b>\nline 2")
    (comment,) = get_post(engine, BOB, post_id).comments
    assert comment.body_html == ("<p>&lt;img src=x onerror=alert(1)&gt; &amp; "
                                 "&lt;b&gt;bold&lt;/b&gt;<br>line 2</p>")
    for bad in ("", "   ", "x" * 10_001):
        with pytest.raises(BadInput):
            add_comment(engine, ANN, post_id, bad)


def test_reactions_count_once_per_person_and_emoji(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    post_id = post_id_of(publish(engine, message("one"), recipients=BOTH))
    react(engine, ANN, post_id, "thumbsup", True)
    react(engine, ANN, post_id, "thumbsup", True)
    react(engine, BOB, post_id, "thumbsup", True)
    react(engine, BOB, post_id, "tada", True)
    react(engine, BOB, post_id, "tada", False)
    reactions = get_post(engine, ANN, post_id).reactions
    assert [(r.emoji, r.count, r.mine) for r in reactions] == [("thumbsup", 2, True)]
    with pytest.raises(BadInput):
        react(engine, ANN, post_id, "<script>", True)


def test_admins_create_and_retitle_channels(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    create_channel(engine, ADMIN_VIEWER, "ideas", title="Ideas board")
    retitle(engine, ADMIN_VIEWER, "ideas", "Idea board", "Anything goes")
    (view,) = list_channels(engine, ADMIN_VIEWER)
    assert (view.name, view.title, view.description, view.open) == (
        "ideas", "Idea board", "Anything goes", False)
    assert list_channels(engine, ANN) == []  # nothing in it for Ann
    with pytest.raises(ValueError):
        create_channel(engine, ADMIN_VIEWER, "a/b")


def test_counts_in_an_open_channel_count_each_post_once(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    mine = post_id_of(publish(engine, message("mine"), recipients=["ann@example.com"]))
    publish(engine, message("theirs", to=["bob@example.com"]), recipients=["bob@example.com"])
    assert [(c.posts, c.unread) for c in list_channels(engine, ANN)] == [(1, 1)]
    set_open(engine, ADMIN_VIEWER, "news", True)
    assert [(c.posts, c.unread) for c in list_channels(engine, ANN)] == [(2, 2)]
    mark_read(engine, ANN, mine, True)
    assert [(c.posts, c.unread) for c in list_channels(engine, ANN)] == [(2, 1)]
    set_open(engine, ADMIN_VIEWER, "news", False)
    assert [(c.posts, c.unread) for c in list_channels(engine, ANN)] == [(1, 0)]
