"""The analysis report written out: JSON (the report itself), CSV (one flat table) and a
self-contained HTML page with SVG charts (pygal, rendered inline, no JavaScript).

CSV layout — one row per figure, columns
`section, key, subkey, messages, deliveries, diverted_deliveries, value`:
- `total` (key empty): messages, deliveries, diverted_deliveries; value = reduction percent
- `category` (key = category); `week` (key = ISO week, subkey = category)
- `sender` (top senders); `rule` (key = rule, subkey = mode; deliveries);
  `destination` (messages, deliveries)
- `skipped` (key = reason; messages = how many)
- `attachment` (key = sha256, subkey = file name; messages, deliveries; value = bytes sent
  repeatedly); `storm` and `thread` (key = subject; messages, deliveries; value = replies)
- `resend` (key = sender, subject = subkey; value = minutes later)
- `reading_time` (key = category; diverted_deliveries; value = seconds saved)
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from jinja2 import Environment

CSV_COLUMNS = ("section", "key", "subkey", "messages", "deliveries", "diverted_deliveries",
               "value")

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL | re.IGNORECASE)
_COLORS = ("#4a6fa5", "#d9822b", "#5b9b5b", "#a54a6f")


def _pygal() -> Any:
    """pygal, imported when a chart is drawn, without the import hook it adds.

    pygal appends an old-style finder (no `find_spec`) to `sys.meta_path` for its map
    plugins; every later import then raises an ImportWarning, which is an error wherever
    warnings are (the tests). The charts here need no plugin, so the finder is removed.
    """
    import pygal

    sys.meta_path[:] = [f for f in sys.meta_path
                        if not (type(f).__module__ == "pygal" and not hasattr(f, "find_spec"))]
    return pygal


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def csv_rows(report: dict[str, Any]) -> Iterator[tuple[object, ...]]:
    yield ("total", "", "", report["messages"], report["deliveries"],
           report["diverted_deliveries"], report["reduction_percent"])
    for category, f in report["by_category"].items():
        yield ("category", category, "", f["messages"], f["deliveries"],
               f["diverted_deliveries"], "")
    for week, entry in report["by_week"].items():
        for category, f in entry["by_category"].items():
            yield ("week", week, category, f["messages"], f["deliveries"],
                   f["diverted_deliveries"], "")
    for s in report["top_senders"]:
        yield ("sender", s["sender"], "", s["messages"], s["deliveries"],
               s["diverted_deliveries"], "")
    for r in report["by_rule"]:
        yield ("rule", r["rule"], r["mode"], "", r["deliveries"], "", "")
    for name, d in report["by_destination"].items():
        yield ("destination", name, "", d["messages"], d["deliveries"], "", "")
    for reason, n in report["skipped"]["reasons"].items():
        yield ("skipped", reason, "", n, "", "", "")
    for a in report["repeated_attachments"]["top"]:
        yield ("attachment", a["sha256"], a["filename"], a["messages"], a["deliveries"], "",
               a["bytes_sent_repeatedly"])
    for t in report["reply_all_storms"]["top"]:
        yield ("storm", t["subject"], "", t["messages"], t["deliveries"], "", t["replies"])
    for t in report["longest_threads"]:
        yield ("thread", t["subject"], "", t["messages"], t["deliveries"], "", t["replies"])
    for r in report["forgot_to_cc_resends"]["examples"]:
        yield ("resend", r["sender"], r["subject"], "", "", "", r["minutes_later"])
    reading = report["reading_time_saved"]
    for category, seconds in reading["by_category_seconds"].items():
        yield ("reading_time", category, "", "", "",
               report["by_category"][category]["diverted_deliveries"], seconds)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(report))
    return out.getvalue()


def _chart(chart: Any) -> str:
    """The chart's SVG without pygal's inline config script (only its tooltip JavaScript,
    which is not loaded, reads it): the page carries no script at all."""
    return _SCRIPT.sub("", str(chart.render(is_unicode=True)))


def _options(title: str, **extra: Any) -> dict[str, Any]:
    # js=() keeps pygal from adding <script> tags that load its tooltips from the web.
    from pygal.style import Style

    style = Style(background="white", plot_background="white", font_family="sans-serif",
                  colors=_COLORS)
    return {"title": title, "style": style, "js": (), "disable_xml_declaration": True,
            "width": 800, "height": 360, "legend_at_bottom": True, **extra}


def charts(report: dict[str, Any]) -> list[str]:
    """Inline SVG charts: per category, per week, top senders."""
    pygal = _pygal()
    rendered = []
    categories = report["by_category"]
    if categories:
        bar = pygal.Bar(**_options("Inbox deliveries per category", x_label_rotation=20))
        bar.x_labels = list(categories)
        bar.add("deliveries", [f["deliveries"] for f in categories.values()])
        bar.add("diverted by the rules", [f["diverted_deliveries"] for f in categories.values()])
        rendered.append(_chart(bar))
    weeks = {w: e for w, e in report["by_week"].items() if e["week_start"]}
    if weeks:
        line = pygal.Line(**_options("Inbox deliveries per week, before and after the rules",
                                     x_label_rotation=40, show_minor_x_labels=False,
                                     show_dots=len(weeks) < 60))
        line.x_labels = list(weeks)
        line.x_labels_major = list(weeks)[::max(1, len(weeks) // 12)]
        line.add("before", [e["deliveries"] for e in weeks.values()])
        line.add("after", [e["deliveries"] - e["diverted_deliveries"] for e in weeks.values()])
        rendered.append(_chart(line))
    senders = report["top_senders"][:10]
    if senders:
        hbar = pygal.HorizontalBar(**_options("Top senders (messages)"))
        hbar.x_labels = [s["sender"] for s in senders]
        hbar.add("messages", [s["messages"] for s in senders])
        rendered.append(_chart(hbar))
    return rendered


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Sluice mailbox analysis</title>
<style>
body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd}
td.n{text-align:right}.big{font-size:2rem;font-weight:bold}figure{margin:1rem 0}
</style></head><body>
<h1>Mailbox analysis</h1>
<p>{{ r.sources|join(", ") }} · rules: {{ r.rules }} · {{ r.started }} – {{ r.finished }}</p>
<p class="big">{{ r.reduction_percent }}% fewer inbox deliveries</p>
<p>{{ r.messages }} messages analyzed ({{ r.skipped.count }} skipped),
{{ r.deliveries }} inbox deliveries, {{ r.diverted_deliveries }} of them diverted by the rules;
about {{ r.reading_time_saved.hours }} hours of reading saved
({{ r.reading_time_saved.assumption }}).</p>
{% for svg in charts %}<figure>{{ svg|safe }}</figure>{% endfor %}
<h2>Per category</h2>
<table><tr><th>category</th><th>messages</th><th>deliveries</th><th>diverted</th>
<th>seconds per delivery (assumed)</th></tr>
{% for c, f in r.by_category.items() %}<tr><td>{{ c }}</td><td class="n">{{ f.messages }}</td>
<td class="n">{{ f.deliveries }}</td><td class="n">{{ f.diverted_deliveries }}</td>
<td class="n">{{ r.reading_time_saved.seconds_per_delivery.get(c, 0) }}</td></tr>{% endfor %}
</table>
<h2>Top senders</h2>
<table><tr><th>sender</th><th>messages</th><th>deliveries</th><th>diverted</th></tr>
{% for s in r.top_senders %}<tr><td>{{ s.sender }}</td><td class="n">{{ s.messages }}</td>
<td class="n">{{ s.deliveries }}</td><td class="n">{{ s.diverted_deliveries }}</td></tr>
{% endfor %}</table>
<h2>Reply-all storms ({{ r.reply_all_storms.threads }})</h2>
<p>Threads with at least {{ r.settings.storm_min_replies }} replies sent to at least
{{ r.settings.storm_min_recipients }} recipients each.</p>
<table><tr><th>subject</th><th>messages</th><th>replies</th><th>deliveries</th></tr>
{% for t in r.reply_all_storms.top %}<tr><td>{{ t.subject }}</td><td class="n">{{ t.messages }}</td>
<td class="n">{{ t.replies }}</td><td class="n">{{ t.deliveries }}</td></tr>{% endfor %}</table>
<h2>Longest threads</h2>
<table><tr><th>subject</th><th>messages</th><th>replies</th><th>max recipients</th></tr>
{% for t in r.longest_threads %}<tr><td>{{ t.subject }}</td><td class="n">{{ t.messages }}</td>
<td class="n">{{ t.replies }}</td><td class="n">{{ t.max_recipients }}</td></tr>{% endfor %}
</table>
<h2>Attachments sent repeatedly</h2>
<p>{{ r.repeated_attachments.files }} files, {{ r.repeated_attachments.bytes_sent_repeatedly }}
bytes stored again in other inboxes.</p>
<table><tr><th>file</th><th>size</th><th>messages</th><th>deliveries</th>
<th>bytes repeated</th></tr>
{% for a in r.repeated_attachments.top %}<tr><td>{{ a.filename }}</td>
<td class="n">{{ a.size }}</td>
<td class="n">{{ a.messages }}</td><td class="n">{{ a.deliveries }}</td>
<td class="n">{{ a.bytes_sent_repeatedly }}</td></tr>{% endfor %}</table>
<h2>"Forgot to cc" re-sends ({{ r.forgot_to_cc_resends.count }})</h2>
<table><tr><th>sender</th><th>subject</th><th>minutes later</th><th>added recipients</th></tr>
{% for e in r.forgot_to_cc_resends.examples %}<tr><td>{{ e.sender }}</td><td>{{ e.subject }}</td>
<td class="n">{{ e.minutes_later }}</td><td class="n">{{ e.added_recipients }}</td></tr>
{% endfor %}</table>
<h2>Skipped ({{ r.skipped.count }})</h2>
<table>{% for reason, n in r.skipped.reasons.items() %}<tr><td>{{ reason }}</td>
<td class="n">{{ n }}</td></tr>{% endfor %}</table>
<ul>{% for e in r.skipped.examples %}<li>{{ e.name }}: {{ e.reason }}{% if e.detail %}
({{ e.detail }}){% endif %}</li>{% endfor %}</ul>
<h2>Definitions</h2>
<dl>{% for k, v in r.definitions.items() %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
</body></html>
"""

_TEMPLATE = Environment(autoescape=True).from_string(_PAGE)


def to_html(report: dict[str, Any]) -> str:
    return _TEMPLATE.render(r=report, charts=charts(report))


def render(report: dict[str, Any], fmt: str) -> str:
    return {"json": to_json, "csv": to_csv, "html": to_html}[fmt](report)
