"""The analysis report as JSON-ready data, read from a run's state.

Every figure is computed from the stored counters; top lists are SQL `ORDER BY … LIMIT`
over the whole run (exact, and the same whatever order the messages were read in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.reports.analysis import (
    CATEGORY,
    DEFECTS,
    DESTINATION,
    FINGERPRINT_CHARS,
    RULE,
    SENDER,
    SKIP,
    TOTAL,
    WEEK,
    AnalysisSettings,
    reading_seconds_saved,
    week_start,
)
from sluice.reports.analysis_state import AnalysisState

#: How many skipped messages are named one by one (all are counted per reason).
SKIPPED_EXAMPLES = 20


@dataclass(frozen=True, slots=True)
class ReportContext:
    """What the report says about how it was made."""

    sources: tuple[str, ...]
    folders: tuple[str, ...]
    rules: str
    internal_domains: tuple[str, ...]
    owner: str
    max_message_bytes: int
    started: str
    finished: str


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _figures(row: Sequence[Any]) -> dict[str, int]:
    return {"messages": int(row[2]), "deliveries": int(row[3]),
            "diverted_deliveries": int(row[4]), "audit_diverted_deliveries": int(row[5])}


def build_report(state: AnalysisState, run: int, settings: AnalysisSettings,
                 context: ReportContext) -> dict[str, Any]:
    totals = state.counts(run, TOTAL)
    messages, deliveries, diverted, audit = (
        (int(totals[0][2]), int(totals[0][3]), int(totals[0][4]), int(totals[0][5]))
        if totals else (0, 0, 0, 0))
    by_category = {row[0]: _figures(row) for row in state.counts(run, CATEGORY)}
    top = settings.top
    reading = {category: round(figures["diverted_deliveries"]
                               * settings.reading_seconds.get(category, 0.0), 1)
               for category, figures in by_category.items()}
    saved = reading_seconds_saved(by_category, settings.reading_seconds)
    return {
        "sources": list(context.sources),
        "folders": list(context.folders) or "all",
        "rules": context.rules,
        "internal_domains": list(context.internal_domains) or "every recipient's domain",
        "owner": context.owner,
        "started": context.started,
        "finished": context.finished,
        "messages": messages,
        "skipped": _skipped(state, run),
        "messages_with_mime_defects": sum(int(r[2]) for r in state.counts(run, DEFECTS)),
        "deliveries": deliveries,
        "diverted_deliveries": diverted,
        "inbox_deliveries_after": deliveries - diverted,
        "reduction_percent": _percent(diverted, deliveries),
        "audit_diverted_deliveries": audit,
        "reduction_percent_if_audit_enforced": _percent(diverted + audit, deliveries),
        "by_category": by_category,
        "by_week": _by_week(state, run),
        "top_senders": [
            {"sender": row[0], **_figures(row)} for row in state.counts(
                run, SENDER, order="messages DESC, k1", limit=top)],
        "senders": state.count_rows(run, SENDER),
        "by_rule": [{"rule": r[0], "mode": r[1], "deliveries": int(r[3])}
                    for r in state.counts(run, RULE, order="deliveries DESC, k1, k2")],
        "by_destination": {r[0]: {"messages": int(r[2]), "deliveries": int(r[3])}
                           for r in state.counts(run, DESTINATION)},
        "repeated_attachments": _attachments(state, run, top),
        "reply_all_storms": _storms(state, run, settings),
        "longest_threads": [_thread(r) for r in state.query(
            "SELECT subject, messages, replies, wide_replies, max_recipients, deliveries, "
            "first, last FROM thread WHERE run = ? ORDER BY messages DESC, key LIMIT ?",
            run, top)],
        "forgot_to_cc_resends": _resends(state, run, settings),
        "reading_time_saved": {
            "seconds": round(saved, 1), "hours": round(saved / 3600, 2),
            "by_category_seconds": reading,
            "assumption": "seconds a person spends on one inbox copy of a message, per "
                          "category, times the diverted inbox deliveries of that category",
            "seconds_per_delivery": dict(settings.reading_seconds),
        },
        "settings": {
            "storm_min_replies": settings.storm_min_replies,
            "storm_min_recipients": settings.storm_min_recipients,
            "resend_window_seconds": settings.resend_window_seconds,
            "resend_fingerprint_chars": FINGERPRINT_CHARS,
            "max_message_bytes": context.max_message_bytes,
            "top": top,
        },
        "definitions": DEFINITIONS,
    }


DEFINITIONS: Mapping[str, str] = {
    "deliveries": "inbox copies: the internal recipients (To, Cc, Bcc) summed over messages",
    "diverted_deliveries": "inbox copies the rules' enforced divert/digest decisions remove",
    "reduction_percent": "diverted_deliveries / deliveries x 100",
    "thread": "messages sharing a normalised subject (Re:/Fwd:/[tags] removed, case folded)",
    "reply_all_storm": "a thread with at least storm_min_replies replies that each went to "
                       "at least storm_min_recipients recipients",
    "repeated_attachment": "a file (same sha256) that reached more than one inbox; bytes "
                           "sent repeatedly = size x (inbox copies - 1)",
    "forgot_to_cc_resend": "a later message from the same sender with the same normalised "
                           "subject and own text (quoted lines left out), within "
                           "resend_window_seconds, to every recipient of the earlier one "
                           "and at least one more",
    "duplicate": "a message whose Message-ID was already counted (a copy in another folder "
                 "or mailbox) is skipped",
    "skipped": "messages that could not be read or analyzed; counted per reason, not in "
               "messages",
}


def _skipped(state: AnalysisState, run: int) -> dict[str, Any]:
    reasons = {r[0]: int(r[2]) for r in state.counts(run, SKIP, order="messages DESC, k1")}
    examples = state.query("SELECT name, reason, detail FROM skipped WHERE run = ? "
                           "ORDER BY name LIMIT ?", run, SKIPPED_EXAMPLES)
    return {"count": sum(reasons.values()), "reasons": reasons,
            "examples": [{"name": n, "reason": r, "detail": d} for n, r, d in examples]}


def _by_week(state: AnalysisState, run: int) -> dict[str, Any]:
    weeks: dict[str, dict[str, Any]] = {}
    for row in state.counts(run, WEEK):
        week, category = str(row[0]), str(row[1])
        start = week_start(week)
        entry = weeks.setdefault(week, {
            "week_start": start.isoformat() if start else None, "messages": 0,
            "deliveries": 0, "diverted_deliveries": 0, "by_category": {}})
        figures = _figures(row)
        for name in ("messages", "deliveries", "diverted_deliveries"):
            entry[name] += figures[name]
        entry["by_category"][category] = {k: figures[k] for k in (
            "messages", "deliveries", "diverted_deliveries")}
    return weeks


def _attachments(state: AnalysisState, run: int, top: int) -> dict[str, Any]:
    files, repeated = state.query(
        "SELECT count(*), coalesce(sum(size * (deliveries - 1)), 0) FROM attachment "
        "WHERE run = ? AND deliveries > 1", run)[0]
    rows = state.query(
        "SELECT sha256, filename, size, messages, deliveries, size * (deliveries - 1) AS r "
        "FROM attachment WHERE run = ? AND deliveries > 1 ORDER BY r DESC, sha256 LIMIT ?",
        run, top)
    return {"files": int(str(files)), "bytes_sent_repeatedly": int(str(repeated)),
            "top": [{"sha256": sha, "filename": name, "size": size, "messages": m,
                     "deliveries": d, "bytes_sent_repeatedly": r}
                    for sha, name, size, m, d, r in rows]}


def _thread(row: Sequence[Any]) -> dict[str, Any]:
    subject, messages, replies, wide, widest, deliveries, first, last = row
    return {"subject": subject, "messages": messages, "replies": replies,
            "wide_replies": wide, "max_recipients": widest, "deliveries": deliveries,
            "hours": round((last - first) / 3600, 1) if first is not None and last is not None
            else None}


def _storms(state: AnalysisState, run: int, settings: AnalysisSettings) -> dict[str, Any]:
    threads, deliveries = state.query(
        "SELECT count(*), coalesce(sum(deliveries), 0) FROM thread "
        "WHERE run = ? AND wide_replies >= ?", run, settings.storm_min_replies)[0]
    rows = state.query(
        "SELECT subject, messages, replies, wide_replies, max_recipients, deliveries, first, "
        "last FROM thread WHERE run = ? AND wide_replies >= ? "
        "ORDER BY deliveries DESC, key LIMIT ?", run, settings.storm_min_replies, settings.top)
    return {"threads": int(str(threads)), "deliveries": int(str(deliveries)),
            "top": [_thread(r) for r in rows]}


def _resends(state: AnalysisState, run: int, settings: AnalysisSettings) -> dict[str, Any]:
    count = 0
    examples: list[dict[str, Any]] = []
    last_counted: object = None
    for rowid, first_ts, later_ts, sender, subject, before, after in state.resend_candidates(
            run, float(settings.resend_window_seconds)):
        if rowid == last_counted:
            continue
        earlier, later = set(str(before).split("\n")), set(str(after).split("\n"))
        added = later - earlier
        if not added or not earlier <= later:
            continue
        last_counted = rowid
        count += 1
        if len(examples) < settings.top:
            examples.append({"sender": sender, "subject": subject,
                             "minutes_later": round((float(str(later_ts))
                                                     - float(str(first_ts))) / 60, 1),
                             "added_recipients": len(added)})
    return {"count": count, "examples": examples}
