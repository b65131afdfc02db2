"""The volume-reduction dashboard: the page, its SVG charts, its JSON and the exports.

Who sees what: a member sees their own figures (`recipient` = their address); an admin sees
everyone's and may narrow to one person with `?user=`. Figures per domain or team cover
everyone for every viewer, but only for groups of at least `privacy_min_group` people.
Charts are separate `image/svg+xml` responses shown with `<img>`: they carry pygal's
stylesheet and no script, and the page itself needs neither inline styles nor scripts.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine

from sluice.api.auth import PageViewerDep, ViewerDep
from sluice.api.deps import EngineDep
from sluice.api.pages import render
from sluice.core.settings import Settings
from sluice.reports import charts
from sluice.reports.baseline import Baseline, latest_baseline
from sluice.reports.live import DAY, WEEK, LiveReport, Period, csv_rows, live_report, to_json
from sluice.space.viewer import Viewer

router = APIRouter()

#: The longest period one request may ask for.
MAX_DAYS = 366
DEFAULT_DAYS = 30
CHARTS = ("reduction", "volume", "category", "destination", "rule")


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """What the dashboard reads from the settings."""

    privacy_min_group: int = 5
    header_only: bool = False
    teams: dict[str, str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None) -> DashboardConfig:
        if settings is None:
            return cls()
        team_of = {member.lower(): team for team, members in settings.teams.items()
                   for member in members}
        return cls(settings.privacy_min_group, settings.header_only, team_of or None)


@dataclass(frozen=True, slots=True)
class Scope:
    """The period, bucket size and whose figures one request asks for."""

    period: Period
    bucket: str
    recipient: str | None
    days: int

    def query(self) -> str:
        values = {"since": self.period.since.date().isoformat(),
                  "until": (self.period.until - timedelta(microseconds=1)).date().isoformat(),
                  "bucket": self.bucket}
        if self.recipient is not None:
            values["user"] = self.recipient
        return urlencode(values)


def _config(request: Request) -> DashboardConfig:
    return DashboardConfig.from_settings(getattr(request.app.state, "settings", None))


def scope(viewer: Viewer, days: int, since: date | None, until: date | None, bucket: str,
          user: str | None, now: datetime | None = None) -> Scope:
    """The request's scope; a member asking for someone else's figures is refused."""
    if bucket not in (DAY, WEEK):
        raise HTTPException(422, "bucket must be day or week")
    wanted = user.strip().lower() if user and user.strip() else None
    if not viewer.is_admin:
        if wanted not in (None, viewer.email):
            raise HTTPException(403, "members see their own figures only")
        wanted = viewer.email
    now = now or datetime.now(UTC)
    if since is not None:
        last = until or now.date()
        if last < since:
            raise HTTPException(422, "until is before since")
        if (last - since).days + 1 > MAX_DAYS:
            raise HTTPException(422, f"at most {MAX_DAYS} days at once")
        period = Period(datetime.combine(since, time.min, UTC),
                        datetime.combine(last + timedelta(days=1), time.min, UTC))
        days = (last - since).days + 1
    else:
        period = Period.last_days(days, now)
    return Scope(period, bucket, wanted, days)


Days = Annotated[int, Query(ge=1, le=MAX_DAYS)]
Bucket = Annotated[str, Query(pattern="^(day|week)$")]


def _report(engine: Engine, config: DashboardConfig, s: Scope) -> LiveReport:
    return live_report(engine, s.period, recipient=s.recipient,
                       privacy_min_group=config.privacy_min_group, teams=config.teams)


def _json(report: LiveReport, baseline: Baseline | None, config: DashboardConfig
          ) -> dict[str, Any]:
    return {**to_json(report), "baseline": baseline.as_dict() if baseline else None,
            "header_only": config.header_only}


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(request: Request, engine: EngineDep, viewer: PageViewerDep,
                   days: Days = DEFAULT_DAYS, since: date | None = None,
                   until: date | None = None, bucket: Bucket = DAY,
                   user: str | None = None) -> HTMLResponse:
    config = _config(request)
    s = scope(viewer, days, since, until, bucket, user)
    report = _report(engine, config, s)
    baseline = latest_baseline(engine)
    rows = report.by_day if s.bucket == DAY else report.by_week
    return render(request, "dashboard.html", viewer, report=report, baseline=baseline,
                  scope=s, query=s.query(), charts=CHARTS, config=config,
                  active_series={k: f for k, f in rows.items() if f.messages},
                  audit_rules={k: f for k, f in report.by_rule.items() if f.would_divert})


@router.get("/dashboard/charts/{name}.svg", include_in_schema=False)
def chart(request: Request, engine: EngineDep, viewer: ViewerDep, name: str,
          days: Days = DEFAULT_DAYS, since: date | None = None, until: date | None = None,
          bucket: Bucket = DAY, user: str | None = None) -> Response:
    if name not in CHARTS:
        raise HTTPException(404, "no such chart")
    s = scope(viewer, days, since, until, bucket, user)
    report = _report(engine, _config(request), s)
    series = report.by_day if s.bucket == DAY else report.by_week
    if name == "reduction":
        baseline = latest_baseline(engine)
        svg = charts.reduction_chart(series, baseline.reduction_percent if baseline else None)
    elif name == "volume":
        svg = charts.volume_chart(series)
    elif name == "category":
        svg = charts.breakdown_chart(report.by_category, "Per category")
    elif name == "destination":
        svg = charts.breakdown_chart(report.by_destination, "Per destination")
    else:
        svg = charts.breakdown_chart(report.by_rule, "Per rule")
    return Response(svg, media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=60"})


@router.get("/api/dashboard/figures")
def figures(request: Request, engine: EngineDep, viewer: ViewerDep,
            days: Days = DEFAULT_DAYS, since: date | None = None, until: date | None = None,
            bucket: Bucket = DAY, user: str | None = None) -> dict[str, Any]:
    """The live figures as JSON (see `sluice.reports.live` for what each number means)."""
    config = _config(request)
    s = scope(viewer, days, since, until, bucket, user)
    return _json(_report(engine, config, s), latest_baseline(engine), config)


@router.get("/api/dashboard/export.json")
def export_json(request: Request, engine: EngineDep, viewer: ViewerDep,
                days: Days = DEFAULT_DAYS, since: date | None = None,
                until: date | None = None, bucket: Bucket = DAY,
                user: str | None = None) -> Response:
    config = _config(request)
    s = scope(viewer, days, since, until, bucket, user)
    body = json.dumps(_json(_report(engine, config, s), latest_baseline(engine), config),
                      indent=2)
    return Response(body, media_type="application/json",
                    headers={"Content-Disposition": _attachment(s, "json")})


@router.get("/api/dashboard/export.csv")
def export_csv(request: Request, engine: EngineDep, viewer: ViewerDep,
               days: Days = DEFAULT_DAYS, since: date | None = None,
               until: date | None = None, bucket: Bucket = DAY,
               user: str | None = None) -> Response:
    s = scope(viewer, days, since, until, bucket, user)
    out = io.StringIO()
    writer = csv.writer(out)
    for row in csv_rows(_report(engine, _config(request), s)):
        writer.writerow([safe_cell(cell) for cell in row])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": _attachment(s, "csv")})


def safe_cell(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _attachment(s: Scope, extension: str) -> str:
    since = s.period.since.date().isoformat()
    until = (s.period.until - timedelta(microseconds=1)).date().isoformat()
    return f'attachment; filename="sluice-figures-{since}-{until}.{extension}"'
