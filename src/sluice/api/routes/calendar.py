"""The calendar over HTTP: the month view (JSON and the /calendar page) and an iCalendar feed
per channel.

Feed sign-in: calendar clients send neither cookies nor custom headers, so the feed also takes
an API token as the `token` query parameter (`/api/channels/sales/calendar.ics?token=…`);
`Authorization: Bearer` and the session cookie work as everywhere. A token in a URL ends up
in the subscribing client's settings and possibly in proxy logs: use a token made for the
calendar (POST /api/tokens, label "calendar") and revoke it when a device is lost. The feed
holds only the events the token's owner may see.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from sqlalchemy import Engine

from sluice.api import people
from sluice.api.auth import PageViewerDep, ViewerDep, current_viewer
from sluice.api.deps import EngineDep
from sluice.api.pages import render
from sluice.api.routes.library import visible_channel_names
from sluice.space import calendar
from sluice.space.ingest import post_path
from sluice.space.viewer import Viewer

router = APIRouter(tags=["calendar"])

MonthQuery = Annotated[str, Query(max_length=7, description="YYYY-MM; default: this month")]
ChannelQuery = Annotated[str, Query(max_length=200)]


class EventOut(BaseModel):
    id: int
    channel: str
    uid: str
    sequence: int
    summary: str
    description: str
    #: UTC; None for an undated event.
    start: datetime | None
    #: UTC, exclusive (an all-day event ends at midnight after its last day).
    end: datetime | None
    all_day: bool
    tzid: str
    location: str
    organizer: str
    status: str
    recurrence: str
    #: ics (from a text/calendar part) or text (read from an event post).
    source: str
    post_url: str


class MonthOut(BaseModel):
    month: str
    previous: str
    next: str
    events: list[EventOut]
    #: Event posts of the month whose date could not be read without guessing.
    undated: list[EventOut]


def event_out(event: calendar.EventView) -> EventOut:
    return EventOut(
        id=event.id, channel=event.channel, uid=event.uid, sequence=event.sequence,
        summary=event.summary, description=event.description, start=event.start,
        end=event.end, all_day=event.all_day, tzid=event.tzid, location=event.location,
        organizer=event.organizer, status=event.status, recurrence=event.rrule,
        source=event.source, post_url=post_path(event.channel, event.post_id))


def _month(text: str) -> calendar.Month:
    if not text:
        now = datetime.now(UTC)
        return calendar.Month(now.year, now.month)
    try:
        return calendar.Month.parse(text)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


def _require_channel(engine: Engine, viewer: Viewer, name: str) -> None:
    if name and name not in visible_channel_names(engine, viewer):
        raise HTTPException(404, "no such channel")


def _month_view(engine: Engine, viewer: Viewer, month: calendar.Month, channel: str
                ) -> calendar.MonthView:
    with engine.connect() as conn:
        return calendar.month_view(conn, viewer, month, channel)


@router.get("/api/calendar")
def month(engine: EngineDep, viewer: ViewerDep, month: MonthQuery = "",
          channel: ChannelQuery = "") -> MonthOut:
    """Events the viewer may see that overlap a month (UTC), and the month's undated ones."""
    wanted = _month(month)
    _require_channel(engine, viewer, channel)
    view = _month_view(engine, viewer, wanted, channel)
    return MonthOut(month=str(wanted), previous=str(wanted.previous()), next=str(wanted.next()),
                    events=[event_out(e) for e in view.events],
                    undated=[event_out(e) for e in view.undated])


async def feed_viewer(request: Request, engine: EngineDep,
                      token: Annotated[str, Query(max_length=200, description=(
                          "an API token, for calendar clients that cannot send headers"))] = ""
                      ) -> Viewer:
    if token:
        viewer = people.viewer_for_token(engine, token)
        if viewer is None:
            raise HTTPException(401, "the API token is unknown or revoked",
                                headers={"WWW-Authenticate": "Bearer"})
        return viewer
    return await current_viewer(request)


@router.get("/api/channels/{name}/calendar.ics",
            responses={200: {"content": {"text/calendar": {}}}})
def channel_feed(name: str, engine: EngineDep,
                 viewer: Annotated[Viewer, Depends(feed_viewer)]) -> Response:
    """The channel's dated events the viewer may see, as an iCalendar feed to subscribe to."""
    _require_channel(engine, viewer, name)
    with engine.connect() as conn:
        events = calendar.channel_events(conn, viewer, name)
    return Response(calendar.feed(events, f"Sluice: {name}"),
                    media_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": f'inline; filename="{name}.ics"',
                             "Cache-Control": "private, no-store"})


@router.get("/calendar", response_class=HTMLResponse, include_in_schema=False)
def calendar_page(request: Request, engine: EngineDep, viewer: PageViewerDep,
                  month: MonthQuery = "", channel: ChannelQuery = "") -> HTMLResponse:
    wanted = _month(month)
    channels = visible_channel_names(engine, viewer)
    channel = channel if channel in channels else ""
    view = _month_view(engine, viewer, wanted, channel)
    weeks = [[(day, [event_out(e) for e in view.on(day)] if day else []) for day in week]
             for week in wanted.weeks()]
    return render(request, "calendar.html", viewer, month=wanted, weeks=weeks,
                  undated=[event_out(e) for e in view.undated], channels=channels,
                  selected=channel, base_url=str(request.base_url).rstrip("/"))
