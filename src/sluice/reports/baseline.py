"""The analyzer's baseline: what the rules would have diverted from mail before Sluice.

`sluice analyze` stores each run's report in the database; the dashboard draws the latest
finished run's reduction next to the live one, so people see whether the gateway delivers
what the analysis promised. Read from the run's table and its per-category rows
(`core/tables_analysis.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from sluice.core.tables_analysis import AnalysisCategory, AnalysisRun
from sluice.reports.live import percent

_run = AnalysisRun.__table__  # type: ignore[attr-defined]
_category = AnalysisCategory.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CategoryBaseline:
    messages: int
    deliveries: int
    diverted_deliveries: int

    @property
    def reduction_percent(self) -> float:
        return percent(self.diverted_deliveries, self.deliveries)


@dataclass(frozen=True, slots=True)
class Baseline:
    """One analysis run's totals: `deliveries` are inbox arrivals without any rule."""

    source: str
    finished_at: datetime | None
    messages: int
    deliveries: int
    diverted_deliveries: int
    by_category: Mapping[str, CategoryBaseline] = field(default_factory=dict)

    @property
    def reduction_percent(self) -> float:
        return percent(self.diverted_deliveries, self.deliveries)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "messages": self.messages, "deliveries": self.deliveries,
            "diverted_deliveries": self.diverted_deliveries,
            "reduction_percent": self.reduction_percent,
            "by_category": {k: {"messages": c.messages, "deliveries": c.deliveries,
                                "diverted_deliveries": c.diverted_deliveries,
                                "reduction_percent": c.reduction_percent}
                            for k, c in self.by_category.items()},
        }


def latest_baseline(engine: Engine) -> Baseline | None:
    """The most recent finished analysis run (by finish time), or None before the first."""
    run, category = _run.c, _category.c
    with engine.connect() as conn:
        row = conn.execute(select(run.id, run.source, run.finished_at, run.messages,
                                  run.deliveries, run.diverted_deliveries)
                           .order_by(run.finished_at.desc(), run.id.desc()).limit(1)).first()
        if row is None:
            return None
        categories = conn.execute(select(category.category, category.messages,
                                         category.deliveries, category.diverted_deliveries)
                                  .where(category.run_id == row.id)).all()
    return Baseline(
        source=row.source, finished_at=row.finished_at, messages=row.messages,
        deliveries=row.deliveries, diverted_deliveries=row.diverted_deliveries,
        by_category={c.category: CategoryBaseline(c.messages, c.deliveries,
                                                  c.diverted_deliveries)
                     for c in sorted(categories, key=lambda c: -c.deliveries)})
