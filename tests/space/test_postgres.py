"""The shared space on PostgreSQL: the same ingest, access rule and search as on SQLite,
against a real server (tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from sluice.core.db import init_schema, make_engine
from sluice.core.settings import load_settings
from sluice.space.channels import list_channels
from sluice.space.posts import add_comment, channel_page, get_post
from sluice.space.search import QueryError, search
from tests.pg import postgres, postgres_url  # noqa: F401  (fixtures)
from tests.space.helpers import ANN, BOB, message, post_id_of, publish


@pytest.fixture()
def pg_engine(postgres_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(load_settings(None, database_url=postgres_url))
    init_schema(engine)
    init_schema(engine)  # twice: creating the schema is idempotent
    yield engine
    engine.dispose()


def test_ingest_access_and_search_on_postgres(pg_engine: Engine) -> None:
    budget = post_id_of(publish(pg_engine, message(
        "Budget 2025", sender="Carla Finance <carla@example.com>",
        text="The travel budget grows by ten percent.",
        files=[("forecast-model.xlsx", "application/vnd.ms-excel", b"xlsx")]),
        recipients=["ann@example.com"]))
    lunch = post_id_of(publish(pg_engine, message("Lunch", text="Pizza on Friday."),
                               recipients=["ann@example.com", "bob@example.com"]))
    again = post_id_of(publish(pg_engine, message("Lunch", text="Pizza on Friday."),
                               recipients=["ann@example.com", "bob@example.com"]))
    assert again == lunch  # the same message published twice is one post

    for query in ("travel", "budget", "carla", "forecast"):
        assert [h.post_id for h in search(pg_engine, ANN, query)] == [budget], query
    assert search(pg_engine, BOB, "travel") == []  # not a recipient: no hit
    assert [h.post_id for h in search(pg_engine, BOB, "pizza")] == [lunch]

    comment = add_comment(pg_engine, BOB, lunch, "I will bring lemonade")
    (hit,) = search(pg_engine, ANN, "lemonade")
    assert (hit.post_id, hit.comment_id) == (lunch, comment.id)
    assert "<mark>" in hit.snippet_html

    page = channel_page(pg_engine, BOB, "news")
    assert [p.id for p in page.posts] == [lunch]
    assert get_post(pg_engine, ANN, budget).attachments[0].filename == "forecast-model.xlsx"
    # Bob read the lunch post by commenting on it; Ann has read neither of hers.
    assert {c.name: c.unread for c in list_channels(pg_engine, BOB)}["news"] == 0
    assert {c.name: c.unread for c in list_channels(pg_engine, ANN)}["news"] == 2


@pytest.mark.parametrize("query", ['"', "(", "a AND", "-x", "x:*", "!!", "' OR 1=1 --"])
def test_any_input_is_a_query_or_a_clear_error_on_postgres(pg_engine: Engine,
                                                            query: str) -> None:
    publish(pg_engine, message("Lunch", text="Pizza on Friday."), recipients=["ann@example.com"])
    try:
        search(pg_engine, ANN, query)
    except QueryError as exc:
        assert str(exc)
