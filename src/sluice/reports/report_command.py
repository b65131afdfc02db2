"""`sluice report`: the dashboard's live figures as a file (HTML with charts, CSV, JSON).

    sluice report --since 2024-05-01 [--until 2024-05-31] --format html|csv|json [--out FILE]

`--since` and `--until` are dates (UTC, both days included) or a span back from now for
`--since` (7d, 12h). Without `--out` the report goes to standard output. The HTML file is
self-contained: styles and SVG charts inline, no script, nothing fetched.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from sluice.core.db import init_schema, make_engine
from sluice.core.errors import ConfigError
from sluice.core.settings import load_settings
from sluice.reports import charts
from sluice.reports.baseline import Baseline, latest_baseline
from sluice.reports.commands import parse_since
from sluice.reports.live import LiveReport, Period, csv_rows, live_report, to_json

FORMATS = ("html", "csv", "json")
_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]))


def period_from(since: str, until: str | None, now: datetime | None = None) -> Period:
    """A date (or 7d/12h) to a date, both days included; until defaults to now."""
    now = now or datetime.now(UTC)
    start = _day_or_moment(since, "--since")
    if until:
        try:
            last = date.fromisoformat(until)
        except ValueError as exc:
            raise ConfigError(f"--until: expected a date (YYYY-MM-DD), got {until!r}") from exc
        end = datetime.combine(last + timedelta(days=1), time.min, UTC)
    else:
        end = now
    if end <= start:
        raise ConfigError("--until is before --since")
    return Period(start, end)


def _day_or_moment(text: str, option: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), time.min, UTC)
    except ValueError:
        pass
    try:
        return parse_since(text)
    except ConfigError as exc:
        raise ConfigError(f"{option}: expected a date (YYYY-MM-DD) or 7d/12h, got {text!r}"
                          ) from exc


def render_json(report: LiveReport, baseline: Baseline | None) -> str:
    return json.dumps({**to_json(report), "baseline": baseline.as_dict() if baseline else None},
                      indent=2)


def render_csv(report: LiveReport) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(csv_rows(report))
    return out.getvalue()


def render_html(report: LiveReport, baseline: Baseline | None, bucket: str = "day") -> str:
    series = report.by_day if bucket == "day" else report.by_week
    svgs = {
        "reduction": charts.reduction_chart(
            series, baseline.reduction_percent if baseline else None),
        "volume": charts.volume_chart(series),
        "category": charts.breakdown_chart(report.by_category, "Per category"),
        "destination": charts.breakdown_chart(report.by_destination, "Per destination"),
    }
    return _TEMPLATES.get_template("report.html").render(
        report=report, baseline=baseline, series=series, bucket=bucket, charts=svgs,
        generated=datetime.now(UTC))


def render(report: LiveReport, baseline: Baseline | None, fmt: str, bucket: str = "day") -> str:
    if fmt == "json":
        return render_json(report, baseline)
    if fmt == "csv":
        return render_csv(report)
    return render_html(report, baseline, bucket)


def cmd_report(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, data_dir=args.data_dir,
                             database_url=args.database_url)
    period = period_from(args.since, args.until)
    engine = make_engine(settings)
    try:
        init_schema(engine)
        team_of = {m.lower(): team for team, members in settings.teams.items()
                   for m in members}
        report = live_report(engine, period, recipient=args.user,
                             privacy_min_group=settings.privacy_min_group,
                             teams=team_of or None)
        baseline = latest_baseline(engine)
    finally:
        engine.dispose()
    text = render(report, baseline, args.format, args.bucket)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"sluice: report written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("report", help="live figures as an HTML, CSV or JSON file")
    parser.add_argument("--since", required=True, metavar="DATE",
                        help="first day (YYYY-MM-DD, UTC) or a span back: 7d, 12h")
    parser.add_argument("--until", metavar="DATE", help="last day, included (default: now)")
    parser.add_argument("--format", choices=FORMATS, default="html")
    parser.add_argument("--bucket", choices=("day", "week"), default="day",
                        help="time series per day or per week (HTML)")
    parser.add_argument("--user", metavar="ADDR", help="one person's figures only")
    parser.add_argument("--out", type=Path, metavar="FILE", help="default: standard output")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--database-url")
    parser.set_defaults(func=cmd_report)
