"""The books of the scale tests must be able to fail: each kind of discrepancy is found."""

from __future__ import annotations

from collections import Counter

from tests.scale.harness import Books, Expect, Published, Sunk, audit

MIXED = Expect("m1", ("keep@example.com",), {"news": ("ann@example.com",)})
HOOKED = Expect("h1", (), {"hook": ("hal@example.com",)})


def books_for(normal: Counter[tuple[str, str]], jobs: dict[tuple[str, str], list[str]],
              posts: Counter[tuple[str, str]], *, fallback: Counter[tuple[str, str]] | None
              = None, webhook: Counter[str] | None = None, in_flight: frozenset[str]
              = frozenset()) -> Books:
    sunk = Sunk(normal=normal, fallback=fallback or Counter())
    return audit([MIXED, HOOKED], sunk, Published(jobs, posts), in_flight=set(in_flight),
                 webhook=webhook or Counter())


GOOD_JOBS = {("m1", "news"): ["done"], ("h1", "hook"): ["done"]}
GOOD_POSTS = Counter({("m1", "news"): 1})
GOOD_MAIL = Counter({("m1", "keep@example.com"): 1})


def test_everything_in_place_is_clean() -> None:
    books = books_for(GOOD_MAIL, GOOD_JOBS, GOOD_POSTS, webhook=Counter({"h1": 1}))
    assert books.missing == books.twice == books.unknown == []


def test_each_discrepancy_is_found() -> None:
    missing = books_for(Counter(), GOOD_JOBS, GOOD_POSTS, webhook=Counter({"h1": 1}))
    assert missing.missing == ["m1 → keep@example.com (mail)"]
    twice = books_for(GOOD_MAIL + GOOD_MAIL, GOOD_JOBS, GOOD_POSTS, webhook=Counter({"h1": 2}))
    assert len(twice.twice) == 2
    allowed = books_for(GOOD_MAIL + GOOD_MAIL, GOOD_JOBS, GOOD_POSTS,
                        webhook=Counter({"h1": 1}), in_flight=frozenset({"m1"}))
    assert allowed.twice == [] and len(allowed.twice_in_flight) == 1
    no_post = books_for(GOOD_MAIL, GOOD_JOBS, Counter(), webhook=Counter({"h1": 1}))
    assert no_post.twice == ["m1: 0 posts in news"]
    pending = books_for(GOOD_MAIL, {**GOOD_JOBS, ("m1", "news"): ["pending"]}, GOOD_POSTS,
                        webhook=Counter({"h1": 1}))
    assert pending.missing == ["m1 → news: jobs ['pending']"]
    leaked = books_for(GOOD_MAIL + Counter({("m1", "ann@example.com"): 1, ("x9", "a@b"): 1}),
                       GOOD_JOBS, GOOD_POSTS, webhook=Counter({"h1": 1}))
    assert leaked.wrongly_delivered == ["m1 → ann@example.com delivered"]
    assert leaked.unknown == ["x9"]
    fell_back_and_posted = books_for(
        GOOD_MAIL, {**GOOD_JOBS, ("h1", "hook"): ["fallback"]}, GOOD_POSTS,
        webhook=Counter({"h1": 1}), fallback=Counter({("h1", "hal@example.com"): 1}))
    assert fell_back_and_posted.twice == [
        "h1: 1 webhook posts, job ['fallback']"]
