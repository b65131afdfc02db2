"""The shared calendar: events from `text/calendar` parts (invitations, updates, cancellations)
and from `event` posts, a month view, and an iCalendar feed per channel.

An event is one row per (channel, UID) in its latest state: a message with a higher SEQUENCE
replaces it, a lower one does not (it is only recorded as a source). Who may see an event is
whoever may see one of the posts that carried it; they see its current state (an update or a
cancellation of a meeting they were invited to).

An `event` post without a calendar part is read for a date only when the date is beyond
doubt: exactly one date, written with its year (or in an unambiguous numeric form). Anything
else is listed as an undated event: a wrong date in a shared calendar is worse than none.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from typing import Any

from icalendar import Calendar, Event, vRecur
from sqlalchemy import Connection, and_, exists, or_, select, update
from sqlmodel import col

from sluice.core.db import insert_ignoring_conflicts
from sluice.core.mail import CalendarPart
from sluice.core.tables_board import (
    CANCELLED,
    CONFIRMED,
    TENTATIVE,
    CalendarEvent,
    CalendarEventSource,
)
from sluice.core.tables_space import SpacePost
from sluice.space.access import visible_posts_clause
from sluice.space.hooks import NewPost
from sluice.space.viewer import Viewer

EVENT = "event"
ICS, TEXT = "ics", "text"
PRODID = "-//Sluice//shared space calendar//EN"
_STATUSES = (CONFIRMED, TENTATIVE, CANCELLED)


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """One event as read from a message; times are UTC (all-day: midnight UTC)."""

    uid: str
    sequence: int
    summary: str
    start: datetime | None
    end: datetime | None
    all_day: bool
    tzid: str = ""
    location: str = ""
    organizer: str = ""
    status: str = CONFIRMED
    rrule: str = ""
    description: str = ""
    source: str = ICS


# --- iCalendar parts --------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """Floating times (no zone) are taken as UTC: there is nothing better to go by."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _moment(value: Any) -> tuple[datetime, bool]:
    """(UTC datetime, all-day) of a decoded DTSTART/DTEND value."""
    if isinstance(value, datetime):
        return _utc(value), False
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC), True
    raise ValueError(f"not a date: {value!r}")


def _text(component: Event, name: str) -> str:
    value = component.get(name)
    return str(value).strip() if value is not None else ""


def _address(value: Any) -> str:
    text = str(value or "").strip()
    return text[7:].lower() if text.lower().startswith("mailto:") else text.lower()


def events_from_ics(part: CalendarPart) -> tuple[ParsedEvent, ...]:
    """The events of one text/calendar part; broken calendars and events give nothing.

    METHOD:CANCEL (on the part or the calendar) marks its events cancelled. Overrides of one
    occurrence (RECURRENCE-ID) are skipped: the month view shows a series by its first one.
    """
    try:
        calendar = Calendar.from_ical(part.text)
    except Exception:  # a broken attachment must not stop the post
        return ()
    method = (part.method or str(calendar.get("METHOD") or "")).upper()
    found: list[ParsedEvent] = []
    for component in calendar.walk("VEVENT"):
        try:
            event = _event(component, method)  # type: ignore[arg-type]
        except (ValueError, TypeError, AttributeError):
            continue
        if event is not None:
            found.append(event)
    return tuple(found)


def _event(component: Event, method: str) -> ParsedEvent | None:
    uid = _text(component, "UID")
    if not uid or component.get("RECURRENCE-ID") is not None:
        return None
    start = end = None
    all_day = False
    tzid = ""
    if component.get("DTSTART") is not None:
        start, all_day = _moment(component.decoded("DTSTART"))
        tzid = str(getattr(component.get("DTSTART"), "params", {}).get("TZID", ""))
        if component.get("DTEND") is not None:
            end = _moment(component.decoded("DTEND"))[0]
        elif component.get("DURATION") is not None:
            end = start + component.decoded("DURATION")
        elif all_day:
            end = start + timedelta(days=1)
    status = _text(component, "STATUS").upper()
    if method == "CANCEL":
        status = CANCELLED
    rrule = component.get("RRULE")
    return ParsedEvent(
        uid=uid, sequence=int(component.get("SEQUENCE") or 0),
        summary=_text(component, "SUMMARY"), start=start, end=end, all_day=all_day,
        tzid=tzid, location=_text(component, "LOCATION"),
        organizer=_address(component.get("ORGANIZER")),
        status=status if status in _STATUSES else CONFIRMED,
        rrule=rrule.to_ical().decode() if rrule is not None else "",
        description=_text(component, "DESCRIPTION")[:4000],
    )


# --- dates in plain text ----------------------------------------------------------------

_MONTHS = {name: number for number, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
    ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
    ("oct", "october"), ("nov", "november"), ("dec", "december")), start=1) for name in names}
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?\.?"
_YEAR = r"((?:19|20)\d{2})"
_DATE_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![\w.-])" + _YEAR + r"-(\d{2})-(\d{2})(?![\w-])"), "ymd"),
    (re.compile(r"(?<![\w.])" + _DAY + r"\s+(?:of\s+)?" + _MONTH + r",?\s+" + _YEAR
                + r"(?!\w)", re.IGNORECASE), "dmy-name"),
    (re.compile(r"(?<![\w.])" + _MONTH + r"\s+" + _DAY + r",?\s+" + _YEAR + r"(?!\w)",
                re.IGNORECASE), "mdy-name"),
    (re.compile(r"(?<![\w./])(\d{1,2})\.(\d{1,2})\.((?:19|20)\d{2})(?![\w.])"), "dmy-dot"),
    (re.compile(r"(?<![\w./])(\d{1,2})/(\d{1,2})/((?:19|20)\d{2})(?![\w/])"), "slash"),
)
_TIME_24 = r"([01]?\d|2[0-3]):([0-5]\d)(?!\s*[ap]\.?m)"
_TIME_12 = r"(1[0-2]|0?[1-9])(?::([0-5]\d))?\s*([ap])\.?m\.?"
_TIME = re.compile(r"(?<![\w:])(?:" + _TIME_24 + "|" + _TIME_12 + r")(?![\w:])", re.IGNORECASE)
_RANGE_GLUE = re.compile(r"^\s*(?:-|–|—|to|until|till)\s*$", re.IGNORECASE)
_QUOTE_START = re.compile(
    r"^(?:-{2,}\s*(?:original message|forwarded message)|on .{4,200} wrote:\s*$|from:\s)",
    re.IGNORECASE)


def _own_text(text: str) -> str:
    """The sender's own words: quoted lines and the quoted message below them dropped."""
    lines: list[str] = []
    for line in text.splitlines():
        if _QUOTE_START.match(line.strip()):
            break
        if not line.lstrip().startswith(">"):
            lines.append(line)
    return "\n".join(lines)


def _dates(text: str) -> set[date]:
    found: set[date] = set()
    for pattern, form in _DATE_FORMS:
        for match in pattern.finditer(text):
            groups = match.groups()
            try:
                if form == "ymd":
                    found.add(date(int(groups[0]), int(groups[1]), int(groups[2])))
                elif form == "dmy-name":
                    found.add(date(int(groups[2]), _MONTHS[groups[1].lower()], int(groups[0])))
                elif form == "mdy-name":
                    found.add(date(int(groups[2]), _MONTHS[groups[0].lower()], int(groups[1])))
                elif form == "dmy-dot":
                    found.add(date(int(groups[2]), int(groups[1]), int(groups[0])))
                else:  # 03/04/2024 could be March or April: only 25/03 or 03/25 is certain
                    first, second, year = int(groups[0]), int(groups[1]), int(groups[2])
                    if first > 12 >= second:
                        found.add(date(year, second, first))
                    elif second > 12 >= first:
                        found.add(date(year, first, second))
                    else:
                        found.add(date(1, 1, 1))  # unreadable date: makes the text ambiguous
            except ValueError:
                found.add(date(1, 1, 1))  # an impossible date: do not pick another one
    return found


def _clock(match: re.Match[str]) -> tuple[time, int, int]:
    hour24, minute24, hour12, minute12, half = match.groups()
    if hour24 is not None:
        return time(int(hour24), int(minute24)), match.start(), match.end()
    hour = int(hour12) % 12 + (12 if half.lower() == "p" else 0)
    return time(hour, int(minute12 or 0)), match.start(), match.end()


def _times(text: str) -> tuple[time, time | None] | None:
    """One start time (and an end when written as a range); None when there is none or more
    than one distinct reading."""
    clocks = [_clock(m) for m in _TIME.finditer(text)]
    ranges = [(a[0], b[0]) for a, b in pairwise(clocks)
              if _RANGE_GLUE.match(text[a[2]:b[1]]) and b[0] > a[0]]
    if len(set(ranges)) == 1:
        start, end = ranges[0]
        if {c[0] for c in clocks} == {start, end}:
            return start, end
        return None
    starts = {c[0] for c in clocks}
    if len(starts) == 1:
        return next(iter(starts)), None
    return None


def extract_when(subject: str, text: str, zone: tzinfo | None = None
                 ) -> tuple[datetime, datetime, bool] | None:
    """(start, end, all_day) in UTC when subject and text name exactly one date.

    A time is used when exactly one (or one range) is written; otherwise the event is all-day
    on that date. Times are read in `zone` (the sender's offset from the Date header), else UTC.
    """
    own = subject + "\n" + _own_text(text)
    days = _dates(own)
    if len(days) != 1:
        return None
    (day,) = days
    if day.year == 1:
        return None
    clock = _times(own)
    if clock is None:
        start = datetime.combine(day, time(), tzinfo=UTC)
        return start, start + timedelta(days=1), True
    begin, finish = clock
    start = datetime.combine(day, begin, tzinfo=zone or UTC)
    end = datetime.combine(day, finish, tzinfo=zone or UTC) if finish else start + timedelta(
        hours=1)
    return _utc(start), _utc(end), False


# --- the hook ---------------------------------------------------------------------------


def text_event(new: NewPost) -> ParsedEvent:
    """An `event` post without a calendar part: dated when the text allows, else undated."""
    zone = new.mail.date.tzinfo if new.mail.date is not None else None
    when = extract_when(new.mail.subject or new.post.subject, new.mail.text, zone)
    start, end, all_day = when if when else (None, None, False)
    return ParsedEvent(uid=f"post-{new.post_id}-{new.raw_sha256[:24]}@sluice", sequence=0,
                       summary=new.post.subject,
                       start=start, end=end, all_day=all_day, organizer=new.post.sender,
                       description=new.post.excerpt[:4000], source=TEXT)


def calendar_hook(conn: Connection, new: NewPost) -> None:
    """Calendar parts of any post become events; an event post without one is read as text."""
    parsed = [event for part in new.mail.calendar for event in events_from_ics(part)]
    if not parsed and new.post.category == EVENT:
        parsed = [text_event(new)]
    for event in parsed:
        store_event(conn, new.channel, new.post_id, event, now=new.post.received_at)


def store_event(conn: Connection, channel: str, post_id: int, event: ParsedEvent,
                now: datetime | None = None) -> int:
    """Insert or update (channel, UID) by SEQUENCE; the post is recorded as a source."""
    at = now or datetime.now(UTC)
    values = {
        "channel": channel, "uid": event.uid, "sequence": event.sequence, "post_id": post_id,
        "summary": event.summary, "description": event.description, "start": event.start,
        "end": event.end, "all_day": event.all_day, "tzid": event.tzid,
        "location": event.location, "organizer": event.organizer, "status": event.status,
        "rrule": event.rrule, "source": event.source, "updated_at": at,
    }
    table = CalendarEvent.__table__  # type: ignore[attr-defined]
    added = insert_ignoring_conflicts(conn, table, [values], ["channel", "uid"])
    row = conn.execute(select(col(CalendarEvent.id), col(CalendarEvent.sequence)).where(
        col(CalendarEvent.channel) == channel, col(CalendarEvent.uid) == event.uid)).one()
    event_id, sequence = int(row[0] or 0), int(row[1])
    if not added and event.sequence >= sequence:
        if event.status == CANCELLED:  # a cancellation calls the event off, details stay
            values = {name: values[name] for name in ("sequence", "post_id", "status",
                                                      "updated_at")}
        else:
            for kept in ("summary", "location", "organizer"):
                if not values[kept]:
                    values.pop(kept)
            values.pop("channel")
            values.pop("uid")
        conn.execute(update(CalendarEvent).where(col(CalendarEvent.id) == event_id)
                     .values(**values))
    insert_ignoring_conflicts(conn, CalendarEventSource.__table__,  # type: ignore[attr-defined]
                              [{"event_id": event_id, "post_id": post_id,
                                "sequence": event.sequence}], ["event_id", "post_id"])
    return event_id


# --- queries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventView:
    id: int
    channel: str
    uid: str
    sequence: int
    summary: str
    description: str
    start: datetime | None  # aware UTC
    end: datetime | None
    all_day: bool
    tzid: str
    location: str
    organizer: str
    status: str
    rrule: str
    source: str
    #: The latest post carrying this event that the viewer may see (for the link to it).
    post_id: int


def _visible_source(viewer: Viewer) -> Any:
    return exists(select(col(CalendarEventSource.id))
                  .join(SpacePost, col(SpacePost.id) == col(CalendarEventSource.post_id))
                  .where(col(CalendarEventSource.event_id) == col(CalendarEvent.id),
                         visible_posts_clause(viewer)))


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _events(conn: Connection, viewer: Viewer, *conditions: Any) -> list[EventView]:
    table = CalendarEvent.__table__  # type: ignore[attr-defined]
    rows = conn.execute(select(table).where(_visible_source(viewer), *conditions)
                        .order_by(col(CalendarEvent.start), col(CalendarEvent.id))).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    latest: dict[int, int] = {}
    for event_id, post_id in conn.execute(
            select(col(CalendarEventSource.event_id), col(CalendarEventSource.post_id))
            .join(SpacePost, col(SpacePost.id) == col(CalendarEventSource.post_id))
            .where(col(CalendarEventSource.event_id).in_(ids), visible_posts_clause(viewer))
            .order_by(col(CalendarEventSource.post_id))):
        latest[event_id] = post_id
    return [EventView(
        e.id, e.channel, e.uid, e.sequence, e.summary, e.description, _aware(e.start),
        _aware(e.end), e.all_day, e.tzid, e.location, e.organizer, e.status, e.rrule, e.source,
        latest[e.id]) for e in rows]


@dataclass(frozen=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """"YYYY-MM" → Month; ValueError otherwise."""
        match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"not a month (YYYY-MM): {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def first(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def weeks(self) -> list[list[date | None]]:
        """The month's days in weeks starting on Monday (None pads the first and last)."""
        days: list[date | None] = [None] * self.first.weekday()
        day = self.first.date()
        while day.month == self.month:
            days.append(day)
            day += timedelta(days=1)
        days += [None] * (-len(days) % 7)
        return [days[i:i + 7] for i in range(0, len(days), 7)]


@dataclass(frozen=True, slots=True)
class MonthView:
    month: Month
    #: Events overlapping the month (UTC), by start.
    events: tuple[EventView, ...]
    #: Event posts of the month (by post time) whose date could not be read.
    undated: tuple[EventView, ...]

    def on(self, day: date) -> tuple[EventView, ...]:
        """The events that take place (at least partly) on `day` (UTC)."""
        begin = datetime.combine(day, time(), tzinfo=UTC)
        finish = begin + timedelta(days=1)
        return tuple(e for e in self.events if e.start is not None and e.start < finish
                     and (e.end if e.end and e.end > e.start else e.start + timedelta(
                         seconds=1)) > begin)


def month_view(conn: Connection, viewer: Viewer, month: Month, channel: str = ""
               ) -> MonthView:
    begin, finish = month.first, month.next().first
    where: list[Any] = [col(CalendarEvent.channel) == channel] if channel else []
    dated = _events(conn, viewer, *where, col(CalendarEvent.start).is_not(None),
                    col(CalendarEvent.start) < finish,
                    or_(col(CalendarEvent.end) > begin,
                        and_(col(CalendarEvent.end).is_(None),
                             col(CalendarEvent.start) >= begin)))
    undated = _events(conn, viewer, *where, col(CalendarEvent.start).is_(None),
                      col(CalendarEvent.updated_at) >= begin,
                      col(CalendarEvent.updated_at) < finish)
    return MonthView(month, tuple(dated), tuple(undated))


def event_view(conn: Connection, viewer: Viewer, event_id: int) -> EventView | None:
    found = _events(conn, viewer, col(CalendarEvent.id) == event_id)
    return found[0] if found else None


def channel_events(conn: Connection, viewer: Viewer, channel: str) -> list[EventView]:
    """Every dated event of a channel the viewer may see (the feed's content)."""
    return _events(conn, viewer, col(CalendarEvent.channel) == channel,
                   col(CalendarEvent.start).is_not(None))


def feed(events: list[EventView], name: str, now: datetime | None = None) -> bytes:
    """An iCalendar (RFC 5545) feed of the events, for calendar clients to subscribe to."""
    stamp = now or datetime.now(UTC)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    for event in _feed_events(events, stamp):
        calendar.add_component(event)
    return bytes(calendar.to_ical())


def _feed_events(events: list[EventView], stamp: datetime) -> Iterator[Event]:
    for view in events:
        if view.start is None:
            continue
        event = Event()
        event.add("uid", view.uid)
        event.add("sequence", view.sequence)
        event.add("dtstamp", stamp)
        if view.all_day:
            event.add("dtstart", view.start.date())
            if view.end is not None:
                event.add("dtend", view.end.date())
        else:
            event.add("dtstart", view.start)
            if view.end is not None:
                event.add("dtend", view.end)
        event.add("summary", view.summary)
        for name, value in (("location", view.location), ("description", view.description)):
            if value:
                event.add(name, value)
        if view.organizer and "@" in view.organizer:
            event.add("organizer", f"mailto:{view.organizer}")
        event.add("status", view.status)
        if view.rrule:
            event.add("rrule", vRecur.from_ical(view.rrule))
        yield event
