"""A reply that joins a thread as a comment still feeds the library and the calendar: "v3
attached" is the document's newest version, an updated invitation moves the event."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from sluice.core.tables_board import CalendarEvent, FeedbackItem
from sluice.core.tables_space import Comment, SpacePost
from sluice.space.calendar import Month, month_view
from sluice.space.library import channel_documents, version_file
from tests.space.board_mail import board_engine, mime, publish
from tests.space.test_calendar import ANN, ics, utc, vevent
from tests.space.test_library import BOB, PDF, T0

TEAM = ["ann@example.com", "bob@example.com"]


def reply(raw: bytes, to_message_id: str) -> bytes:
    return f"In-Reply-To: {to_message_id}\r\nReferences: {to_message_id}\r\n".encode() + raw


def test_a_new_version_sent_as_a_reply_enters_the_library(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    root = publish(engine, mime("Price list", to=TEAM, message_id="<prices@example.com>",
                                files=[("Price list v2.pdf", PDF, b"%PDF two")]),
                   category="material", recipients=TEAM, received_at=T0)
    answer = publish(engine, reply(mime("RE: Price list", sender="bob@example.com", to=TEAM,
                                        text="v3 attached, with the new discounts.",
                                        files=[("Price list v3.pdf", PDF, b"%PDF three")]),
                                   "<prices@example.com>"),
                     category="material", recipients=TEAM, received_at=T0 + timedelta(1))
    assert answer == root  # it joined the thread
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SpacePost)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(Comment)).scalar_one() == 1
        (doc,) = channel_documents(conn, BOB, "sales")
        assert [v.version for v in doc.versions] == [2, 1]
        assert (doc.latest.filename, doc.latest.sender) == ("Price list v3.pdf",
                                                           "bob@example.com")
        latest = version_file(conn, ANN, doc.id, 2)
        assert latest is not None and latest.data == b"%PDF three"
    engine.dispose()


def test_an_updated_invitation_sent_as_a_reply_moves_the_event(tmp_path: Path) -> None:
    engine = board_engine(tmp_path)
    invite = ics("REQUEST", vevent("review@x", 0, "DTSTART:20240705T140000Z",
                                   "DTEND:20240705T150000Z", summary="Review"))
    moved = ics("REQUEST", vevent("review@x", 1, "DTSTART:20240708T090000Z",
                                  "DTEND:20240708T100000Z", summary="Review (moved)"))
    publish(engine, mime("Review", to=TEAM, message_id="<review@example.com>",
                         calendar=[("REQUEST", invite)]),
            category="event", recipients=TEAM)
    publish(engine, reply(mime("RE: Review", to=TEAM, calendar=[("REQUEST", moved)]),
                          "<review@example.com>"),
            category="feedback", recipients=TEAM)
    with engine.connect() as conn:
        (event,) = month_view(conn, ANN, Month(2024, 7)).events
        assert (event.summary, event.start) == ("Review (moved)", utc(2024, 7, 8, 9))
        # A reply opens no feedback item for the thread, whatever its category.
        assert conn.execute(select(func.count()).select_from(FeedbackItem)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(CalendarEvent)).scalar_one() == 1
    engine.dispose()
