"""Live figures against hand-counted expectations on mail recorded by the real gateway."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql

from sluice.core.tables import MessageRecord
from sluice.reports.live import (
    DAY,
    WEEK,
    Figures,
    GroupFigures,
    Period,
    SpaceReach,
    bucket,
    bucket_labels,
    by_group,
    csv_rows,
    live_report,
    to_json,
)
from tests.reports.scenario import M3_DAYS_BACK, TEAM, Recorded, record_scenario


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    result = record_scenario(tmp_path_factory.mktemp("live"))
    yield result
    result.engine.dispose()


def period(rec: Recorded, days: int = 30) -> Period:
    return Period(rec.now - timedelta(days=days), rec.now + timedelta(minutes=1))


def test_totals_match_the_hand_count(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded))
    # inbox: M1 dia, eli, cem (fallback); M2 ann, eli; M3 ann. diverted: M1 ann, bob; M4 ann, bob
    assert report.totals == Figures(messages=4, inbox=6, diverted=4, fallback=1,
                                    would_divert=3)
    assert report.totals.reduction_percent == 40.0
    assert report.totals.would_reduction_percent == 30.0
    assert report.external_recipients == 1


def test_per_user(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded))
    assert report.by_user == {
        "ann@example.com": Figures(messages=4, inbox=2, diverted=2, would_divert=1),
        "bob@example.com": Figures(messages=2, diverted=2),
        "cem@example.com": Figures(messages=1, inbox=1, fallback=1),
        "dia@example.com": Figures(messages=1, inbox=1, would_divert=1),
        "eli@example.com": Figures(messages=2, inbox=2, would_divert=1),
    }


def test_a_member_sees_only_their_own_figures(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded), recipient="ann@example.com")
    assert report.totals == Figures(messages=4, inbox=2, diverted=2, would_divert=1)
    assert list(report.by_user) == ["ann@example.com"]
    assert report.external_recipients == 0
    assert set(report.top_broadcasters) == {"boss@example.com", "news@example.com",
                                            "carl@partner.test"}
    assert report.top_broadcasters["boss@example.com"] == Figures(messages=2, diverted=2)


def test_per_category_and_destination(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded))
    assert report.by_category == {
        "broadcast": Figures(messages=2, inbox=3, diverted=4, fallback=1, would_divert=1),
        "event": Figures(messages=1, inbox=2, would_divert=2),
        "direct": Figures(messages=1, inbox=1),
    }
    assert report.by_destination == {
        "team-space": Figures(messages=3, inbox=3, diverted=4, would_divert=3),
        "(none)": Figures(messages=2, inbox=2),
        "hook": Figures(messages=1, inbox=1, fallback=1),
    }


def test_top_broadcasters_rank_by_what_still_reaches_inboxes(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded))
    assert list(report.top_broadcasters.items()) == [
        ("boss@example.com", Figures(messages=2, inbox=3, diverted=4, fallback=1,
                                     would_divert=1)),
        ("news@example.com", Figures(messages=1, inbox=2, would_divert=2)),
        ("carl@partner.test", Figures(messages=1, inbox=1)),
    ]


def test_days_and_weeks(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded, days=20))
    today = recorded.now.date().isoformat()
    m3_day = (recorded.now - timedelta(days=M3_DAYS_BACK)).date().isoformat()
    assert len(report.by_day) == 21  # every day of the period, empty ones too
    assert report.by_day[today] == Figures(messages=3, inbox=5, diverted=4, fallback=1,
                                           would_divert=3)
    assert report.by_day[m3_day] == Figures(messages=1, inbox=1)
    assert sum(f.arrivals for f in report.by_day.values()) == report.totals.arrivals
    monday = (recorded.now.date() - timedelta(days=recorded.now.weekday())).isoformat()
    assert report.by_week[monday].messages == 3
    assert sum(report.by_week.values(), Figures()) == report.totals
    # A period that leaves M3 out.
    recent = live_report(recorded.engine, period(recorded, days=2))
    assert recent.totals.messages == 3 and m3_day not in recent.by_day


def test_figures_add_up(recorded: Recorded) -> None:
    """Invariants: every breakdown of outcomes sums to the totals."""
    report = live_report(recorded.engine, period(recorded))
    for rows in (report.by_category, report.by_destination, report.by_user,
                 report.by_day, report.by_week):
        summed = sum(rows.values(), Figures())
        assert (summed.inbox, summed.diverted, summed.fallback, summed.would_divert) == (
            report.totals.inbox, report.totals.diverted, report.totals.fallback,
            report.totals.would_divert)
    assert sum(f.messages for f in report.by_category.values()) == report.totals.messages
    assert 0 <= report.totals.reduction_percent <= 100


def test_small_groups_show_no_figures(recorded: Recorded) -> None:
    shown = live_report(recorded.engine, period(recorded), privacy_min_group=5)
    assert shown.by_domain == (GroupFigures("example.com", 5, Figures(
        messages=10, inbox=6, diverted=4, fallback=1, would_divert=3)),)
    hidden = live_report(recorded.engine, period(recorded), privacy_min_group=6)
    assert hidden.by_domain == (GroupFigures("example.com", 5, None),)
    teams = {"ann@example.com": "sales", "bob@example.com": "sales",
             "cem@example.com": "ops", "dia@example.com": "ops", "eli@example.com": "ops"}
    by_team = live_report(recorded.engine, period(recorded), privacy_min_group=3,
                          teams=teams).by_team
    assert [(g.name, g.people, g.figures is not None) for g in by_team] == [
        ("ops", 3, True), ("sales", 2, False)]


def test_group_figures_sum_per_person() -> None:
    people = {f"p{i}@a.test": Figures(messages=1, inbox=1) for i in range(3)}
    people["q@b.test"] = Figures(messages=1, diverted=1)
    assert by_group(people, lambda u: u.rpartition("@")[2], 3) == (
        GroupFigures("a.test", 3, Figures(messages=3, inbox=3)),
        GroupFigures("b.test", 1, None))


def test_exports_carry_every_table(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded))
    data = to_json(report)
    assert data["totals"]["reduction_percent"] == 40.0
    assert set(data["by_user"]) == set(TEAM)
    assert "reduction_percent" in data["definitions"]
    rows = csv_rows(report)
    assert rows[0][:3] == ("table", "key", "messages")
    assert ("totals", "all", 4, 6, 4, 1, 3, 40.0, 30.0) in rows
    assert {r[0] for r in rows[1:]} >= {"totals", "day", "week", "category", "destination",
                                        "user", "sender", "domain"}


def test_bucket_labels_cover_the_period() -> None:
    span = Period(datetime(2024, 1, 3, 12, tzinfo=UTC), datetime(2024, 1, 16, tzinfo=UTC))
    days = bucket_labels(span, DAY)
    assert days[0] == "2024-01-03" and days[-1] == "2024-01-15" and len(days) == 13
    # 2024-01-01 was a Monday.
    assert bucket_labels(span, WEEK) == ["2024-01-01", "2024-01-08", "2024-01-15"]


def test_postgresql_buckets_use_its_own_functions() -> None:
    column = MessageRecord.__table__.c.received_at  # type: ignore[attr-defined]
    week = str(bucket("postgresql", column, WEEK).compile(dialect=postgresql.dialect()))
    assert "to_char(date_trunc(" in week
    with pytest.raises(ValueError):
        bucket("mysql", column, DAY)


def test_empty_database_gives_zeros(tmp_path: Path) -> None:
    from sluice.core.db import init_schema, make_engine
    from tests.servers import gateway_settings

    engine = make_engine(gateway_settings(tmp_path))
    init_schema(engine)
    report = live_report(engine, Period.last_days(7))
    assert report.totals == Figures()
    assert report.totals.reduction_percent == 0.0
    assert len(report.by_day) == 7 and report.by_user == {}
    engine.dispose()


def test_per_rule_shows_what_each_audit_rule_would_add(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded))
    assert report.by_rule == {
        "ann@example.com#1": Figures(messages=2, diverted=2),
        "bob@example.com#1": Figures(messages=2, diverted=2),
        "(no rule)": Figures(messages=2, inbox=2),
        "policy#1": Figures(messages=1, inbox=2, would_divert=2),
        "cem@example.com#1": Figures(messages=1, inbox=1, fallback=1),
        "dia@example.com#1": Figures(messages=1, inbox=1, would_divert=1),
    }


def test_posts_read_in_the_space(recorded: Recorded) -> None:
    report = live_report(recorded.engine, period(recorded))
    # Diverted to the space: ann and bob for M1 and M4; ann opened M1's post.
    assert report.space == SpaceReach(diverted_to_space=4, read=1)
    assert report.space.read_percent == 25.0
    own = live_report(recorded.engine, period(recorded), recipient="bob@example.com")
    assert own.space == SpaceReach(diverted_to_space=2, read=0)
