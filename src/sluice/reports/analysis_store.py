"""Put a finished analysis into the database: the baseline the dashboard shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from sluice.core.tables_analysis import AnalysisCategory, AnalysisRun, AnalysisWeek
from sluice.reports.analysis import week_start


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def store_report(engine: Engine, report: dict[str, Any]) -> int:
    """One AnalysisRun row with its week x category and category rows; returns its id."""
    with Session(engine) as session:
        run = AnalysisRun(
            source="\n".join(report["sources"]), rules=str(report["rules"])[:1024],
            started_at=_moment(report["started"]), finished_at=_moment(report["finished"]),
            messages=report["messages"], skipped=report["skipped"]["count"],
            deliveries=report["deliveries"],
            diverted_deliveries=report["diverted_deliveries"],
            reduction_percent=report["reduction_percent"],
            reading_seconds_saved=report["reading_time_saved"]["seconds"],
            report_json=json.dumps(report, ensure_ascii=False))
        session.add(run)
        session.flush()
        assert run.id is not None
        for week, entry in report["by_week"].items():
            for category, figures in entry["by_category"].items():
                session.add(AnalysisWeek(
                    run_id=run.id, week=week, week_start=week_start(week), category=category,
                    messages=figures["messages"], deliveries=figures["deliveries"],
                    diverted_deliveries=figures["diverted_deliveries"]))
        for category, figures in report["by_category"].items():
            session.add(AnalysisCategory(
                run_id=run.id, category=category, messages=figures["messages"],
                deliveries=figures["deliveries"],
                diverted_deliveries=figures["diverted_deliveries"]))
        session.commit()
        return run.id
