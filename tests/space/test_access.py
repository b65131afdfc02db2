"""The one access rule: only recipients see a post (or everyone, once an admin opened the
channel); admins are no exception; whatever hangs off a post follows it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sluice.space.access import can_see_post
from sluice.space.channels import NotAllowed, get_channel, list_channels, set_open
from sluice.space.posts import (
    NotFound,
    add_comment,
    attachment,
    channel_page,
    get_post,
    mark_read,
    react,
)
from sluice.space.search import search
from sluice.space.viewer import Viewer
from tests.space.helpers import (
    ADMIN_VIEWER,
    ANN,
    BOB,
    EVE,
    message,
    post_id_of,
    publish,
    space_engine,
)

PDF = b"%PDF-1.4 salaries"
SHA = hashlib.sha256(PDF).hexdigest()


def secret_post(tmp_path: Path) -> tuple[Engine, int]:
    engine = space_engine(tmp_path)
    raw = message("Salary review", to=["ann@example.com"], text="confidential salaries",
                  files=[("salaries.pdf", "application/pdf", PDF)])
    return engine, post_id_of(publish(engine, raw, channel="hr", recipients=["ann@example.com"]))


@pytest.mark.parametrize("outsider", [BOB, ADMIN_VIEWER, Viewer("")], ids=["member", "admin",
                                                                            "no-address"])
def test_someone_who_was_not_a_recipient_sees_nothing(tmp_path: Path,
                                                      outsider: Viewer) -> None:
    engine, post_id = secret_post(tmp_path)
    assert get_post(engine, ANN, post_id).subject == "Salary review"
    with engine.connect() as conn:
        assert can_see_post(conn, ANN, post_id)
        assert not can_see_post(conn, outsider, post_id)
    for attempt in (
        lambda: get_post(engine, outsider, post_id),
        lambda: attachment(engine, outsider, post_id, SHA),
        lambda: add_comment(engine, outsider, post_id, "hi"),
        lambda: react(engine, outsider, post_id, "heart", True),
        lambda: mark_read(engine, outsider, post_id, True),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert search(engine, outsider, "salaries") == []
    assert [h.post_id for h in search(engine, ANN, "salaries")] == [post_id]
    names = [c.name for c in list_channels(engine, outsider)]
    assert names == (["hr"] if outsider.is_admin else [])  # admins manage every channel
    if outsider.is_admin:
        assert get_channel(engine, outsider, "hr").posts == 0
        assert channel_page(engine, outsider, "hr").posts == ()
    else:
        with pytest.raises(NotFound):
            channel_page(engine, outsider, "hr")


def test_an_open_channel_is_readable_by_everyone_signed_in(tmp_path: Path) -> None:
    engine, post_id = secret_post(tmp_path)
    with pytest.raises(NotAllowed):
        set_open(engine, BOB, "hr", True)
    set_open(engine, ADMIN_VIEWER, "hr", True)
    assert get_post(engine, BOB, post_id).id == post_id
    assert attachment(engine, EVE, post_id, SHA).data == PDF
    assert [h.post_id for h in search(engine, EVE, "salaries")] == [post_id]
    set_open(engine, ADMIN_VIEWER, "hr", False)
    with pytest.raises(NotFound):
        get_post(engine, BOB, post_id)


def test_an_attachment_of_another_post_is_not_reachable_through_a_visible_one(
        tmp_path: Path) -> None:
    engine, secret_id = secret_post(tmp_path)
    mine = post_id_of(publish(engine, message("Lunch", to=["bob@example.com"]),
                              channel="hr", recipients=["bob@example.com"]))
    assert get_post(engine, BOB, mine).id == mine
    with pytest.raises(NotFound):
        attachment(engine, BOB, mine, SHA)
    with pytest.raises(NotFound):
        attachment(engine, BOB, mine, "../../etc/passwd")
    assert secret_id != mine
