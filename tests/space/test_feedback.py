"""The feedback board: feedback posts become items, status and owner changes are recorded,
filters work, and only people who may see the post see or change the item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from sluice.core.tables_board import FeedbackItem
from sluice.space.feedback import (
    FeedbackError,
    change_item,
    feedback_domains,
    feedback_item,
    feedback_items,
    sender_domain,
)
from sluice.space.viewer import Viewer
from tests.space.board_mail import board_engine, mime, publish

ANN, BOB, EVE = Viewer("ann@example.com"), Viewer("bob@example.com"), Viewer("eve@example.com")
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    engine = board_engine(tmp_path)
    publish(engine, mime("Customer wants SSO", sender="kim@customer.example"),
            category="feedback", recipients=["ann@example.com", "bob@example.com"],
            received_at=T0)
    publish(engine, mime("Partner: price too high", sender="lee@partner.example"),
            category="feedback", recipients=["ann@example.com"],
            received_at=T0 + timedelta(hours=1))
    publish(engine, mime("Weekly numbers"), category="broadcast",
            recipients=["ann@example.com", "bob@example.com"])
    return engine


def test_sender_domain() -> None:
    assert sender_domain("Kim@Customer.Example") == "customer.example"
    assert sender_domain("nobody") == ""


def test_feedback_posts_become_new_items(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(FeedbackItem)).scalar_one() == 2
        items = feedback_items(conn, ANN)
    assert [(i.title, i.status, i.sender_domain) for i in items] == [
        ("Partner: price too high", "new", "partner.example"),
        ("Customer wants SSO", "new", "customer.example")]
    engine.dispose()


def test_filters_by_status_domain_and_channel(engine: Engine) -> None:
    with engine.begin() as conn:
        sso = feedback_items(conn, ANN, domain="customer.example")
        assert [i.title for i in sso] == ["Customer wants SSO"]
        change_item(conn, ANN, sso[0].id, status="planned")
        assert [i.title for i in feedback_items(conn, ANN, status="planned")] == [
            "Customer wants SSO"]
        assert [i.title for i in feedback_items(conn, ANN, status="new")] == [
            "Partner: price too high"]
        assert feedback_items(conn, ANN, channel="other") == []
        assert feedback_domains(conn, ANN) == ["customer.example", "partner.example"]
        assert feedback_domains(conn, BOB) == ["customer.example"]
    engine.dispose()


def test_changes_are_recorded_with_who_and_when(engine: Engine) -> None:
    with engine.begin() as conn:
        (item,) = feedback_items(conn, BOB)
        at = T0 + timedelta(days=1)
        changed = change_item(conn, BOB, item.id, status="acknowledged",
                              owner="Ann@Example.com", now=at)
        assert changed is not None
        assert (changed.status, changed.owner) == ("acknowledged", "ann@example.com")
        assert [(c.actor, c.field, c.old, c.new) for c in changed.history] == [
            ("bob@example.com", "status", "new", "acknowledged"),
            ("bob@example.com", "owner", "", "ann@example.com")]
        assert changed.history[0].at == at
        # Setting the same values again records nothing.
        again = change_item(conn, ANN, item.id, status="acknowledged", owner="ann@example.com")
        assert again is not None and len(again.history) == 2
        assert feedback_items(conn, ANN)[0].id == item.id  # most recently changed first
    engine.dispose()


def test_bad_status_and_owners_who_cannot_see_the_item_are_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        partner = feedback_items(conn, ANN, domain="partner.example")[0]
        with pytest.raises(FeedbackError):
            change_item(conn, ANN, partner.id, status="maybe")
        with pytest.raises(FeedbackError):
            change_item(conn, ANN, partner.id, owner="bob@example.com")  # not a recipient
        unassigned = change_item(conn, ANN, partner.id, owner="")
        assert unassigned is not None and unassigned.history == ()
    engine.dispose()


def test_people_who_cannot_see_the_post_cannot_see_or_change_the_item(engine: Engine) -> None:
    admin = Viewer("root@example.com", role="admin")
    with engine.begin() as conn:
        partner = feedback_items(conn, ANN, domain="partner.example")[0]
        for outsider in (BOB, EVE, admin):
            assert feedback_item(conn, outsider, partner.id) is None
            assert change_item(conn, outsider, partner.id, status="done") is None
        assert feedback_items(conn, EVE) == []
        assert feedback_item(conn, ANN, partner.id).status == "new"  # type: ignore[union-attr]
    engine.dispose()
