"""Tables of `sluice analyze`: each finished analysis and its per-week and per-category
figures, the baseline the dashboard compares the live figures with.

`analysis_week` has one row per (week, category) with the week's Monday in `week_start`
(None for mail without a usable Date); summing a run's rows over categories gives the week,
over weeks the category. Counts follow the analyzer's definitions: `deliveries` are inbox
copies (internal recipients summed over messages), `diverted_deliveries` those the rules
would take out of the inbox.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from sluice.core.tables import utcnow


class AnalysisRun(SQLModel, table=True):
    """One finished `sluice analyze` run: what was read, with which rules, and its totals."""

    __tablename__ = "analysis_run"

    id: int | None = Field(default=None, primary_key=True)
    #: The sources as given (IMAP URLs without password, paths), newline-separated.
    source: str = Field(sa_column=Column(Text, nullable=False))
    rules: str = Field(default="", max_length=1024)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime = Field(default_factory=utcnow, index=True)
    messages: int = 0
    skipped: int = 0
    deliveries: int = 0
    diverted_deliveries: int = 0
    reduction_percent: float = 0.0
    reading_seconds_saved: float = 0.0
    #: The whole JSON report (`sluice analyze --format json`).
    report_json: str = Field(sa_column=Column(Text, nullable=False))


class AnalysisWeek(SQLModel, table=True):
    """A run's figures for one week and one category."""

    __tablename__ = "analysis_week"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="analysis_run.id", index=True)
    week: str = Field(max_length=16)  # ISO week, "2001-W05", or "unknown"
    week_start: date | None = None
    category: str = Field(max_length=32)
    messages: int = 0
    deliveries: int = 0
    diverted_deliveries: int = 0


class AnalysisCategory(SQLModel, table=True):
    """A run's figures for one category."""

    __tablename__ = "analysis_category"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="analysis_run.id", index=True)
    category: str = Field(max_length=32)
    messages: int = 0
    deliveries: int = 0
    diverted_deliveries: int = 0
