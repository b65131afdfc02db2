"""Charts of the live figures as SVG text (pygal), for the dashboard and `sluice report`.

pygal writes an inline `<script>` with its tooltip configuration even when no JavaScript
file is asked for; it is removed here, so a chart is plain SVG that runs nothing and needs
no script permission in a Content-Security-Policy. Labels and values are escaped by the
XML serialiser: sender addresses or category names cannot inject markup.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from xml.etree import ElementTree

import pygal
from pygal.style import Style

from sluice.reports.live import Figures

# pygal appends a legacy import hook (no find_spec) to sys.meta_path for its map plugins;
# after that every failed import anywhere emits ImportWarning, which breaks libraries that
# probe optional modules (prometheus-client probes snappy). Sluice draws no maps.
sys.meta_path[:] = [finder for finder in sys.meta_path
                    if not isinstance(finder, pygal.PluginImportFixer)]

WIDTH, HEIGHT = 760, 320
#: Inbox (grey-blue), diverted (green), would divert (amber), baseline (dark grey).
STYLE = Style(
    background="white", plot_background="white", foreground="#1d2330",
    foreground_strong="#1d2330", foreground_subtle="#8a93a5",
    colors=("#1a7f37", "#d08700", "#59636e", "#4a6fa5"),
    font_family="system-ui, sans-serif", title_font_size=15, legend_font_size=12,
    label_font_size=11, major_label_font_size=11,
)
#: How many rows a horizontal breakdown shows; the rest are summed into one row.
MAX_ROWS = 12


def _config(**extra: object) -> dict[str, object]:
    return {"js": [], "disable_xml_declaration": True, "width": WIDTH, "height": HEIGHT,
            "style": STYLE, "legend_at_bottom": True, "legend_at_bottom_columns": 4,
            "print_values": False, "explicit_size": False, **extra}


def to_svg(chart: pygal.graph.graph.Graph) -> str:
    """The chart as SVG text without pygal's inline script."""
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if child.tag == "script":
                parent.remove(child)
    return ElementTree.tostring(tree, encoding="unicode")


def reduction_chart(by_time: Mapping[str, Figures], baseline_percent: float | None,
                    title: str = "Inbox deliveries avoided (%)") -> str:
    """Reduction per day or week, with what audit-mode rules would add and the baseline."""
    chart = pygal.Line(**_config(title=title, show_dots=len(by_time) < 40, range=(0, 100),
                                 x_label_rotation=30, show_minor_x_labels=len(by_time) <= 16,
                                 x_labels_major_every=max(1, len(by_time) // 8)))
    chart.x_labels = list(by_time)
    chart.add("diverted", [_or_none(f.reduction_percent, f) for f in by_time.values()])
    chart.add("with audit-mode rules", [
        _or_none(f.reduction_percent + f.would_reduction_percent, f) for f in by_time.values()])
    if baseline_percent is not None:
        chart.add("analyzer baseline", [baseline_percent] * len(by_time),
                  stroke_style={"dasharray": "6, 4"}, show_dots=False)
    return to_svg(chart)


def _or_none(value: float, figures: Figures) -> float | None:
    """No arrivals means no reduction to plot (a gap), not a reduction of 0%."""
    return value if figures.arrivals else None


def volume_chart(by_time: Mapping[str, Figures],
                 title: str = "Inbox deliveries and diversions") -> str:
    chart = pygal.StackedBar(**_config(title=title, x_label_rotation=30,
                                       show_minor_x_labels=len(by_time) <= 16,
                                       x_labels_major_every=max(1, len(by_time) // 8)))
    chart.x_labels = list(by_time)
    chart.add("diverted", [f.diverted for f in by_time.values()])
    chart.add("would divert (audit)", [f.would_divert for f in by_time.values()])
    chart.add("inbox (other)", [f.inbox - f.would_divert for f in by_time.values()])
    return to_svg(chart)


def breakdown_chart(rows: Mapping[str, Figures], title: str) -> str:
    """One horizontal bar per row (category, destination, user...), biggest first."""
    shown = dict(list(rows.items())[:MAX_ROWS])
    rest = list(rows.values())[MAX_ROWS:]
    if rest:
        shown[f"{len(rest)} more"] = sum(rest, Figures())
    chart = pygal.HorizontalStackedBar(**_config(
        title=title, height=max(180, 60 + 28 * len(shown))))
    labels = list(reversed(shown))  # pygal draws the first label at the bottom
    chart.x_labels = labels
    chart.add("diverted", [shown[k].diverted for k in labels])
    chart.add("would divert (audit)", [shown[k].would_divert for k in labels])
    chart.add("inbox (other)", [shown[k].inbox - shown[k].would_divert for k in labels])
    return to_svg(chart)
