"""Search over posts, comments and attachment names, for visible posts only; any user input
is a query, never a syntax error."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from sluice.space.posts import add_comment
from sluice.space.search import QueryError, fts5_query, search, snippet_to_html
from tests.space.helpers import ANN, BOB, message, post_id_of, publish, space_engine


def filled(tmp_path: Path) -> tuple[Engine, int, int]:
    engine = space_engine(tmp_path)
    budget = post_id_of(publish(engine, message(
        "Budget <2025>", sender="Carla Finance <carla@example.com>",
        text="The travel budget grows by ten percent.",
        files=[("forecast-model.xlsx", "application/vnd.ms-excel", b"xlsx")]),
        recipients=["ann@example.com"]))
    lunch = post_id_of(publish(engine, message("Lunch", text="Pizza on Friday."),
                               recipients=["ann@example.com", "bob@example.com"]))
    return engine, budget, lunch


def test_finds_subject_body_sender_and_attachment_names(tmp_path: Path) -> None:
    engine, budget, _ = filled(tmp_path)
    for query in ("travel", "Budget", "carla", "Finance", "forecast", "forecast-model.xlsx",
                  "trav*", '"travel budget"', "TRAVEL percent"):
        assert [h.post_id for h in search(engine, ANN, query)] == [budget], query
    assert search(engine, ANN, '"budget travel"') == []  # a phrase keeps its order


def test_comments_are_found_and_point_at_their_post(tmp_path: Path) -> None:
    engine, _, lunch = filled(tmp_path)
    comment = add_comment(engine, BOB, lunch, "I will bring lemonade")
    (hit,) = search(engine, ANN, "lemonade")
    assert (hit.post_id, hit.comment_id, hit.channel) == (lunch, comment.id, "news")
    assert "<mark>lemonade</mark>" in hit.snippet_html


def test_hits_only_for_visible_posts(tmp_path: Path) -> None:
    engine, _, lunch = filled(tmp_path)
    assert search(engine, BOB, "travel") == []
    assert [h.post_id for h in search(engine, BOB, "pizza")] == [lunch]


def test_snippets_are_escaped_with_marks(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    publish(engine, message("x", text="<script>alert('hi')</script> quarterly review"))
    (hit,) = search(engine, ANN, "quarterly")
    assert "<script>" not in hit.snippet_html
    assert "&lt;script&gt;" in hit.snippet_html
    assert "<mark>quarterly</mark>" in hit.snippet_html
    assert snippet_to_html("a \x02<b>\x03") == "a <mark>&lt;b&gt;</mark>"


@pytest.mark.parametrize("query", ['"', "(", "a AND", "NEAR(", "OR", "col:x", "x^y", "-x",
                                   "budget\"", '" OR 1=1 --', "*", "a:b:c", "'", "\\"])
def test_any_input_is_a_safe_query(tmp_path: Path, query: str) -> None:
    engine, _, _ = filled(tmp_path)
    try:
        search(engine, ANN, query)
    except QueryError as exc:  # only "nothing to search for"
        assert "no words" in str(exc)


def test_query_building() -> None:
    assert fts5_query('budget "travel plan" trav* x-y') == (
        '"budget" "travel plan" "trav"* "x y"')
    with pytest.raises(QueryError):
        fts5_query("  ** () ")
    with pytest.raises(QueryError):
        fts5_query("x" * 500)


def test_newest_matches_come_first(tmp_path: Path) -> None:
    engine = space_engine(tmp_path)
    older = post_id_of(publish(engine, message("Roadmap one", text="roadmap")))
    newer = post_id_of(publish(engine, message("Roadmap two", text="roadmap")))
    assert [h.post_id for h in search(engine, ANN, "roadmap")] == [newer, older]
    assert [h.post_id for h in search(engine, ANN, "roadmap", limit=1, offset=1)] == [older]
