"""The calendar's REST API, feed and page: only events of posts the viewer may see, the feed
signed in by token (query parameter or Bearer), 404 and 401 where due."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from icalendar import Calendar

from sluice.api.app import create_app
from tests.api.board_app import PASSWORD, BoardApp, board_app
from tests.space.board_mail import mime, publish
from tests.space.test_calendar import ics, vevent
from tests.webauth import sign_in


def _calendar(tmp_path: Path) -> BoardApp:
    app = board_app(tmp_path)
    team = ["ann@example.com", "bob@example.com"]
    publish(app.engine, mime("Launch", calendar=[("REQUEST", ics("REQUEST", vevent(
        "launch@x", 0, "DTSTART;TZID=Europe/Berlin:20240705T140000",
        "DTEND;TZID=Europe/Berlin:20240705T150000", summary="Launch",
        extra="LOCATION:Room 1")))]), category="event", recipients=team)
    publish(app.engine, mime("Board meeting", sender="chair@example.com",
                             calendar=[("REQUEST", ics("REQUEST", vevent(
                                 "board@x", 0, "DTSTART:20240710T090000Z",
                                 "DTEND:20240710T100000Z", summary="Board meeting")))]),
            category="event", recipients=["ann@example.com"])
    publish(app.engine, mime("Summer party soon", sender="hr@example.com"), category="event",
            recipients=team, received_at=datetime(2024, 7, 2, tzinfo=UTC))
    return app


def test_month_shows_what_the_viewer_may_see(tmp_path: Path) -> None:
    app = _calendar(tmp_path)
    ann = app.get("/api/calendar", "ann@example.com", month="2024-07").json()
    assert (ann["month"], ann["previous"], ann["next"]) == ("2024-07", "2024-06", "2024-08")
    assert [(e["summary"], e["start"]) for e in ann["events"]] == [
        ("Launch", "2024-07-05T12:00:00Z"), ("Board meeting", "2024-07-10T09:00:00Z")]
    assert [e["summary"] for e in ann["undated"]] == ["Summer party soon"]
    bob = app.get("/api/calendar", "bob@example.com", month="2024-07", channel="sales").json()
    assert [e["summary"] for e in bob["events"]] == ["Launch"]
    for outsider in ("eve@example.com", "root@example.com"):
        empty = app.get("/api/calendar", outsider, month="2024-07").json()
        assert empty["events"] == [] and empty["undated"] == []
    assert app.get("/api/calendar", "eve@example.com", channel="sales").status_code == 404
    assert app.get("/api/calendar", "ann@example.com", month="2024-13").status_code == 422
    assert app.get("/api/calendar", None, month="2024-07").status_code == 401
    app.engine.dispose()


def _uids(data: bytes) -> set[str]:
    return {str(e["UID"]) for e in Calendar.from_ical(data).walk("VEVENT")}


def test_feed_by_token_parameter_or_bearer_holds_only_visible_events(tmp_path: Path) -> None:
    app = _calendar(tmp_path)
    path = "/api/channels/sales/calendar.ics"
    anonymous = TestClient(create_app(app.engine))
    by_parameter = anonymous.get(path, params={"token": app.tokens["ann@example.com"]})
    assert by_parameter.status_code == 200
    assert by_parameter.headers["content-type"].startswith("text/calendar")
    assert _uids(by_parameter.content) == {"launch@x", "board@x"}
    by_bearer = app.get(path, "bob@example.com")
    assert _uids(by_bearer.content) == {"launch@x"}  # not the board meeting
    launch = next(iter(Calendar.from_ical(by_bearer.content).walk("VEVENT")))
    assert launch.decoded("DTSTART") == datetime(2024, 7, 5, 12, tzinfo=UTC)
    assert str(launch["LOCATION"]) == "Room 1"
    admin = app.get(path, "root@example.com")
    assert admin.status_code == 200 and _uids(admin.content) == set()
    assert app.get(path, "eve@example.com").status_code == 404
    assert anonymous.get(path, params={"token": "sluice_nonsense"}).status_code == 401
    assert anonymous.get(path).status_code == 401
    app.engine.dispose()


def test_month_page_with_navigation(tmp_path: Path) -> None:
    app = _calendar(tmp_path)
    client = TestClient(create_app(app.engine))
    assert client.get("/calendar", follow_redirects=False).status_code == 303
    sign_in(client, "bob@example.com", PASSWORD)
    page = client.get("/calendar", params={"month": "2024-07"})
    assert page.status_code == 200
    cell = page.text.split(f'data-day="{date(2024, 7, 5).isoformat()}"')[1].split("</td>")[0]
    assert "12:00 Launch" in " ".join(cell.split())
    assert "Board meeting" not in page.text
    assert "Summer party soon" in page.text.split("Undated events")[1]
    assert 'href="/calendar?month=2024-06"' in page.text
    assert 'href="/calendar?month=2024-08"' in page.text
    assert "/api/channels/sales/calendar.ics?token=" in page.text
    app.engine.dispose()
