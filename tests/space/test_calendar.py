"""The calendar: iCalendar parts (time zones, all-day, update and cancel by SEQUENCE), careful
dates from event posts, the month view, and a feed that icalendar reads back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from sluice.core.mail import CalendarPart
from sluice.core.tables_board import CalendarEvent
from sluice.space.calendar import (
    Month,
    channel_events,
    events_from_ics,
    extract_when,
    feed,
    month_view,
)
from sluice.space.viewer import Viewer
from tests.space.board_mail import board_engine, mime, publish

ANN, BOB = Viewer("ann@example.com"), Viewer("bob@example.com")

VTIMEZONE = """BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def ics(method: str, body: str, zones: str = "") -> str:
    text = ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//Test//EN\n"
            f"METHOD:{method}\n{zones}{body}END:VCALENDAR\n")
    return text.replace("\n", "\r\n")


def vevent(uid: str, sequence: int, start: str, end: str = "", summary: str = "Launch",
           extra: str = "") -> str:
    lines = [f"UID:{uid}", f"SEQUENCE:{sequence}", "DTSTAMP:20240301T100000Z", start]
    if end:
        lines.append(end)
    lines += [f"SUMMARY:{summary}", *([extra] if extra else [])]
    return "BEGIN:VEVENT\n" + "\n".join(lines) + "\nEND:VEVENT\n"


def test_windows_time_zone_is_converted_to_utc() -> None:
    text = ics("REQUEST", vevent(
        "launch@x", 0, "DTSTART;TZID=W. Europe Standard Time:20240705T140000",
        "DTEND;TZID=W. Europe Standard Time:20240705T153000",
        extra="ORGANIZER;CN=Ann:mailto:Ann@Example.com\nLOCATION:Room 1"), VTIMEZONE)
    (event,) = events_from_ics(CalendarPart("REQUEST", text))
    assert (event.start, event.end) == (utc(2024, 7, 5, 12), utc(2024, 7, 5, 13, 30))
    assert not event.all_day
    assert (event.organizer, event.location, event.tzid) == (
        "ann@example.com", "Room 1", "W. Europe Standard Time")


def test_iana_zone_utc_and_all_day_dates() -> None:
    text = ics("PUBLISH", vevent("a@x", 0, "DTSTART;TZID=America/New_York:20240105T090000",
                                 extra="DURATION:PT2H")
               + vevent("b@x", 0, "DTSTART:20240105T090000Z")
               + vevent("c@x", 0, "DTSTART;VALUE=DATE:20240110",
                        "DTEND;VALUE=DATE:20240112"))
    a, b, c = events_from_ics(CalendarPart("", text))
    assert (a.start, a.end) == (utc(2024, 1, 5, 14), utc(2024, 1, 5, 16))
    assert b.start == utc(2024, 1, 5, 9) and b.end is None
    assert (c.start, c.end, c.all_day) == (utc(2024, 1, 10), utc(2024, 1, 12), True)


def test_broken_calendars_and_events_without_uid_give_nothing() -> None:
    assert events_from_ics(CalendarPart("REQUEST", "BEGIN:VCALENDAR\r\nnonsense")) == ()
    text = ics("REQUEST", "BEGIN:VEVENT\nDTSTART:20240105T090000Z\nSUMMARY:x\nEND:VEVENT\n")
    assert events_from_ics(CalendarPart("REQUEST", text)) == ()


@pytest.mark.parametrize(("subject", "text", "expected"), [
    ("Offsite on 2024-05-17", "Bring shoes.", (utc(2024, 5, 17), utc(2024, 5, 18),
                                               True)),
    ("Launch party", "Join us on Friday, 17 May 2024 at 18:30.",
     (utc(2024, 5, 17, 18, 30), utc(2024, 5, 17, 19, 30), False)),
    ("Webinar May 17th, 2024", "From 2pm to 3:30pm.",
     (utc(2024, 5, 17, 14), utc(2024, 5, 17, 15, 30), False)),
    ("Team day 17.05.2024", "9:00 - 17:00", (utc(2024, 5, 17, 9), utc(2024, 5, 17, 17),
                                             False)),
    ("Review 25/05/2024", "", (utc(2024, 5, 25), utc(2024, 5, 26), True)),
    ("Review", "On 2024-05-17 at 10:00 or 14:00?", (utc(2024, 5, 17),
                                                   utc(2024, 5, 18), True)),
])
def test_one_clear_date_is_read(subject: str, text: str,
                                expected: tuple[datetime, datetime, bool]) -> None:
    assert extract_when(subject, text) == expected


@pytest.mark.parametrize(("subject", "text"), [
    ("Party next Friday", "See you there at 18:00."),     # no date at all
    ("Review 03/04/2024", ""),                             # March or April?
    ("Options", "Either 2024-05-17 or 2024-05-24."),       # two dates
    ("Party on May 17", "at 18:00"),                        # no year
    ("Deadline 2024-02-30", ""),                            # no such day
])
def test_unclear_dates_are_never_guessed(subject: str, text: str) -> None:
    assert extract_when(subject, text) is None


def test_quoted_mail_and_the_senders_zone() -> None:
    text = "Kick-off on 2024-05-17 at 10:00.\n\nOn Fri, 1 Mar 2024 Bob wrote:\n> 2024-06-01"
    cet = timezone(timedelta(hours=2))
    assert extract_when("Kick-off", text, cet) == (
        utc(2024, 5, 17, 8), utc(2024, 5, 17, 9), False)


def test_months() -> None:
    assert str(Month.parse("2024-12").next()) == "2025-01"
    assert str(Month.parse("2024-01").previous()) == "2023-12"
    with pytest.raises(ValueError):
        Month.parse("2024-13")
    weeks = Month(2024, 9).weeks()  # 1 September 2024 is a Sunday
    assert weeks[0][:6] == [None] * 6 and weeks[0][6] == date(2024, 9, 1)
    assert all(len(week) == 7 for week in weeks)


def test_update_and_cancel_by_sequence_through_posts(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    team = ["ann@example.com", "bob@example.com"]
    base = ("DTSTART;TZID=W. Europe Standard Time:20240705T140000",
            "DTEND;TZID=W. Europe Standard Time:20240705T150000")
    invite = ics("REQUEST", vevent("launch@x", 0, *base, summary="Launch"), VTIMEZONE)
    moved = ics("REQUEST", vevent("launch@x", 2, "DTSTART:20240712T080000Z",
                                  "DTEND:20240712T090000Z", summary="Launch (moved)"))
    stale = ics("REQUEST", vevent("launch@x", 1, *base, summary="Launch v1"), VTIMEZONE)
    cancel = ics("CANCEL", vevent("launch@x", 3, "DTSTART:20240712T080000Z",
                                  summary="Launch (moved)", extra="STATUS:CANCELLED"))
    for number, (method, text) in enumerate([("REQUEST", invite), ("REQUEST", moved),
                                             ("REQUEST", stale)]):
        publish(engine, mime(f"Invitation {number}", calendar=[(method, text)]),
                category="event", recipients=team)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CalendarEvent)).scalar_one() == 1
        july = month_view(conn, ANN, Month(2024, 7))
        (event,) = july.events
        assert (event.summary, event.sequence) == ("Launch (moved)", 2)  # SEQUENCE 1 ignored
        assert event.start == utc(2024, 7, 12, 8)
        assert july.on(date(2024, 7, 12)) == (event,) and july.on(date(2024, 7, 5)) == ()
    publish(engine, mime("Cancelled: Launch", calendar=[("CANCEL", cancel)]),
            category="event", recipients=team)
    with engine.connect() as conn:
        (event,) = month_view(conn, BOB, Month(2024, 7)).events
        assert (event.status, event.sequence) == ("CANCELLED", 3)
        assert event.end == utc(2024, 7, 12, 9)  # kept from the update
    engine.dispose()


def test_month_view_only_shows_what_the_viewer_may_see(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    june = utc(2024, 6, 3, 9)
    publish(engine, mime("Offsite", calendar=[("PUBLISH", ics("PUBLISH", vevent(
        "offsite@x", 0, "DTSTART;VALUE=DATE:20240630", "DTEND;VALUE=DATE:20240702",
        summary="Offsite")))]), category="event",
        recipients=["ann@example.com", "bob@example.com"])
    publish(engine, mime("Board meeting", calendar=[("REQUEST", ics("REQUEST", vevent(
        "board@x", 0, "DTSTART:20240610T090000Z", "DTEND:20240610T100000Z")))]),
        category="event", recipients=["ann@example.com"], channel="board")
    publish(engine, mime("Summer party next week", sender="hr@example.com",
                         text="Details soon."), category="event",
            recipients=["bob@example.com"], received_at=june)
    publish(engine, mime("Customer day on 2024-06-20", sender="hr@example.com",
                         text="All day."), category="event",
            recipients=["bob@example.com"], received_at=june)
    with engine.connect() as conn:
        for_ann = month_view(conn, ANN, Month(2024, 6))
        assert [e.uid for e in for_ann.events] == ["board@x", "offsite@x"]
        assert for_ann.undated == ()
        for_bob = month_view(conn, BOB, Month(2024, 6))
        assert [e.summary for e in for_bob.events] == ["Customer day on 2024-06-20", "Offsite"]
        assert [e.summary for e in for_bob.undated] == ["Summer party next week"]
        assert [e.uid for e in month_view(conn, BOB, Month(2024, 7)).events] == ["offsite@x"]
        assert month_view(conn, BOB, Month(2024, 7)).undated == ()
        assert [e.uid for e in month_view(conn, ANN, Month(2024, 6), "board").events] == [
            "board@x"]
        admin = Viewer("root@example.com", role="admin")
        empty = month_view(conn, admin, Month(2024, 6))
        assert empty.events == () and empty.undated == ()
    engine.dispose()


def test_feed_reads_back_with_icalendar(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    publish(engine, mime("Launch", calendar=[("REQUEST", ics("REQUEST", vevent(
        "launch@x", 4, "DTSTART;TZID=W. Europe Standard Time:20240705T140000",
        "DTEND;TZID=W. Europe Standard Time:20240705T150000",
        extra="LOCATION:Room 1\nORGANIZER:mailto:ann@example.com\nRRULE:FREQ=WEEKLY;COUNT=3"),
        VTIMEZONE))]), category="event", recipients=["bob@example.com"])
    publish(engine, mime("Offsite", calendar=[("PUBLISH", ics("PUBLISH", vevent(
        "offsite@x", 0, "DTSTART;VALUE=DATE:20240630", "DTEND;VALUE=DATE:20240702")))]),
        category="event", recipients=["bob@example.com"])
    publish(engine, mime("Secret", calendar=[("PUBLISH", ics("PUBLISH", vevent(
        "secret@x", 0, "DTSTART:20240610T090000Z")))]), category="event",
        recipients=["cem@example.com"])
    publish(engine, mime("Party soon"), category="event", recipients=["bob@example.com"])
    with engine.connect() as conn:
        data = feed(channel_events(conn, BOB, "sales"), "sales")
    calendar = Calendar.from_ical(data)
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {"launch@x", "offsite@x"}  # not Cem's, not the undated post
    launch = events["launch@x"]
    assert launch.decoded("DTSTART") == utc(2024, 7, 5, 12)
    assert launch.decoded("DTEND") == utc(2024, 7, 5, 13)
    assert int(launch["SEQUENCE"]) == 4
    assert str(launch["LOCATION"]) == "Room 1"
    assert str(launch["ORGANIZER"]) == "mailto:ann@example.com"
    assert launch["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=3"
    offsite = events["offsite@x"]
    assert (offsite.decoded("DTSTART"), offsite.decoded("DTEND")) == (date(2024, 6, 30),
                                                                      date(2024, 7, 2))
    engine.dispose()
