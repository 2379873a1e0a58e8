"""One self-contained HTML report: the tables plus charts, readable offline, with no script.

Charts are drawn by matplotlib (Agg-free SVG backend, no pyplot state) and inlined as SVG, so
the file needs no network, no JavaScript and no fonts beyond the browser's: it opens the same
on an air-gapped laptop, prints, and cannot log console errors. SVG output is made
deterministic (fixed hash salt, no date metadata), so the same table gives the same bytes.

Charts (each a ``<figure class="chart" data-chart=...>``):
- latency-distribution: per workload/bucket, a violin per engine config and node (from the
  chart data's quantiles of the measured samples);
- p95-ci: per workload/bucket, each node's p95 with its interval per engine config, and the
  bucket's budget;
- sustained: per node, the sustained run's median and p95 over time with its thermal states as
  coloured bands;
- cost-per-million: per workload/bucket, US dollars per million inferences with the interval
  carried from the latency (only when the table has cost figures);
- energy-per-inference: per workload/bucket, SoC joules per inference (net of idle) with the
  run-level interval per node and engine config (only when cells carry energy).

The table model is also embedded as JSON (``<script type="application/json">``, never run) so a
program can read the numbers from the report.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from fleet_tui.analysis.tables import Cell, Column, ComparisonTable, Estimate, Row
from fleet_tui.display import MAX_DOCUMENT_FIELD, clean
from fleet_tui.export._text import all_tables, cell_lines, column_label, header
from fleet_tui.export.json import document

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from fleet_tui.export.chart_data import ChartData

PALETTE: Final = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
THERMAL_COLOURS: Final = {
    "nominal": "#e8f5e9",
    "fair": "#fff8e1",
    "serious": "#ffe0b2",
    "critical": "#ffcdd2",
    "unknown": "#eeeeee",
}
MAX_SUSTAINED_PANELS: Final = 12
"""Per node; more sustained cells than this are left out of the chart (the note says so)."""

CSS: Final = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; } h3 { font-size: 1.05rem; }
table.results { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }
table.results th, table.results td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; vertical-align: top; }
table.results th { background: #f4f4f4; text-align: left; }
td.faster { background: #e8f5e9; } td.slower { background: #ffebee; }
td.insufficient { background: #fafafa; color: #555; }
ul.notes { font-size: 0.85rem; color: #444; }
figure.chart { margin: 1rem 0; } figure.chart svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #444; }
"""


def _e(text: object) -> str:
    """Text for the page: a node's control characters escaped (`fleet_tui.display.clean`), then
    HTML-escaped."""
    return html.escape(clean(text, MAX_DOCUMENT_FIELD))


def render(table: ComparisonTable, charts: ChartData | None = None) -> bytes:
    return report(table, charts)[0]


def report(table: ComparisonTable, charts: ChartData | None = None) -> tuple[bytes, dict[str, str]]:
    """The report and its charts (element id -> SVG text, drawn once for both)."""
    svgs: dict[str, str] = {}
    title = _e(table.title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    for one in all_tables(table):
        parts += _table_html(one, one is table)
    parts.append('<h2 id="charts">Charts</h2>')
    parts += _charts_html(table, charts, svgs)
    data = json.dumps(document(table), allow_nan=False, sort_keys=False).replace("</", "<\\/")
    parts.append(f'<script type="application/json" id="table-data">{data}</script>')
    parts.append("</body></html>\n")
    return "\n".join(parts).encode("utf-8"), svgs


# --- tables ----------------------------------------------------------------------------------------


def _table_html(table: ComparisonTable, main: bool) -> list[str]:
    e = _e
    out = [] if main else [f"<h2>{e(table.title)}</h2>"]
    out.append('<ul class="notes">' + "".join(f"<li>{e(line)}</li>" for line in header(table)) + "</ul>")
    if table.changes:
        out.append("<p>What changed between the runs:</p><ul>")
        out += [
            f"<li>{e(c.what)}: {e(c.before or 'absent')} &rarr; {e(c.after or 'absent')}</li>"
            for c in table.changes
        ]
        out.append("</ul>")
    heads = "".join(f"<th>{_column_head(c)}</th>" for c in table.columns)
    out.append(f'<table class="results" data-kind="{e(table.kind)}">')
    out.append(f"<thead><tr><th>workload / bucket</th><th>engine</th>{heads}</tr></thead><tbody>")
    for row in table.rows:
        cells = []
        for column in table.columns:
            cell = table.cell(row.key, column.key)
            if cell is None:
                cells.append("<td>&mdash;</td>")
                continue
            verdict = cell.ratio.verdict if cell.ratio is not None else ""
            text = "<br>".join(e(line) for line in cell_lines(cell))
            cells.append(f'<td class="{e(verdict)}">{text}</td>')
        out.append(f"<tr><th>{e(_where(row))}</th><td>{e(row.engine_key)}</td>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    failures = [(c, g) for c in table.cells for g in c.gates if g.verdict == "fail"]
    if failures:
        out.append("<p>Gate failures:</p><ul>")
        out += [
            f"<li>{e(g.gate)} ({e(column_label(table, c.column))}): {e(g.detail)}</li>" for c, g in failures
        ]
        out.append("</ul>")
    if table.recommendations:
        out.append("<p>Recommendations:</p><ul>")
        for rec in table.recommendations:
            extra = "".join(
                f"<br><small>{e(label)}: {e(text)}</small>"
                for label, text in (("evidence", rec.evidence), ("would change it", rec.would_change))
                if text
            )
            out.append(f"<li><strong>{e(rec.workload)}</strong>: {e(rec.text)}{extra}</li>")
        out.append("</ul>")
    return out


def _column_head(column: Column) -> str:
    extras = [x for x in (column.chip, f"tier {column.tier}" if column.tier else None) if x]
    if column.tier_mismatch:
        extras.append("tier mismatch")
    if column.is_baseline:
        extras.append("baseline")
    small = f"<br><small>{_e(', '.join(extras))}</small>" if extras else ""
    return _e(column.label) + small


def _where(row: Row) -> str:
    text = f"{row.workload}/{row.bucket}" + (f" on {row.node}" if row.node else "")
    return text + (f" (budget {row.budget_ms:g} ms)" if row.budget_ms is not None else "")


# --- charts -----------------------------------------------------------------------------------------


def _figure(
    width: float,
    height: float,
    *,
    left: float = 0.7,
    right: float = 1.5,
    bottom: float = 0.5,
    top: float = 0.2,
    hspace: float | None = None,
    wspace: float | None = None,
) -> Figure:
    """A figure with fixed margins in inches (constrained layout would double the drawing time;
    the right margin holds the legend)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        hspace=hspace,
        wspace=wspace,
    )
    return fig


def _svg(fig: Figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "fleet-tui", "svg.fonttype": "none", "font.size": 9}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "fleet-tui"})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # inline: no XML prolog or DOCTYPE
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _figure_html(kind: str, ident: str, caption: str, svg: str) -> str:
    return (
        f'<figure class="chart" data-chart="{html.escape(kind)}" id="{html.escape(ident)}">'
        f"{svg}<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _colours(table: ComparisonTable) -> dict[str, str]:
    return {c.key: PALETTE[i % len(PALETTE)] for i, c in enumerate(table.columns)}


def _buckets(table: ComparisonTable) -> list[tuple[str, str, list[Row]]]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in table.rows:
        groups.setdefault((row.workload, row.bucket), []).append(row)
    return [(w, b, rows) for (w, b), rows in groups.items()]


def chart_figures(table: ComparisonTable, charts: ChartData | None) -> Iterator[tuple[str, str, str, Figure]]:
    """(kind, element id, caption, figure) of every chart the report draws."""
    colours = _colours(table)
    soc = table
    for w, b, rows in _buckets(soc):
        if charts is not None:
            fig = _distribution_figure(soc, rows, charts, colours)
            if fig is not None:
                yield (
                    "latency-distribution",
                    f"dist-{_slug(w)}-{_slug(b)}",
                    f"{w}/{b}: latency distribution of the measured samples per engine config and node (ms)",
                    fig,
                )
        fig = _p95_figure(soc, rows, colours)
        if fig is not None:
            yield (
                "p95-ci",
                f"p95-{_slug(w)}-{_slug(b)}",
                f"{w}/{b}: p95 with its 95% interval per node and engine config (ms), budget dashed",
                fig,
            )
    if charts is not None:
        for column in soc.columns:
            fig, left_out = _sustained_figure(soc, column, charts)
            if fig is not None:
                note = f" ({left_out} more sustained cells not drawn)" if left_out else ""
                yield (
                    "sustained",
                    f"sustained-{_slug(column.key)}",
                    f"{column.label}: the sustained run's median and p95 latency (ms) over seconds since its "
                    f"first measured sample (dotted line: the sustained phase starts), thermal state as "
                    f"background (green nominal, yellow fair, orange serious, red critical){note}",
                    fig,
                )
    yield from _bar_charts(
        table,
        lambda cell: cell.cost.cost_per_million_usd if cell.cost else None,
        "cost-per-million",
        "cost",
        "US dollars per million inferences per node and engine config, with the interval carried "
        "from the latency",
        "USD per million inferences",
    )
    yield from _bar_charts(
        table,
        lambda cell: cell.energy.j_per_inference if cell.energy else None,
        "energy-per-inference",
        "energy",
        "SoC joules per inference, net of the idle baseline, per node and engine config, with the "
        "run-level interval",
        "J per inference (SoC)",
    )


def _bar_charts(
    table: ComparisonTable,
    figure_of: Callable[[Cell], Estimate | None],
    kind: str,
    slug: str,
    caption: str,
    ylabel: str,
) -> Iterator[tuple[str, str, str, Figure]]:
    """One grouped bar chart per bucket of the first table whose cells carry this figure."""
    shown = next((t for t in all_tables(table) if any(figure_of(c) for c in t.cells)), None)
    if shown is None:
        return
    colours = _colours(shown)
    for w, b, rows in _buckets(shown):
        bars = [
            (i, j, column, estimate)
            for i, _, j, column, cell in _cells_of(shown, rows)
            if (estimate := figure_of(cell)) is not None
        ]
        fig = _bar_figure(shown, rows, colours, bars, ylabel)
        if fig is not None:
            yield kind, f"{slug}-{_slug(w)}-{_slug(b)}", f"{w}/{b}: {caption}", fig


def _bar_figure(
    table: ComparisonTable,
    rows: Sequence[Row],
    colours: dict[str, str],
    bars: Sequence[tuple[int, int, Column, Estimate]],
    ylabel: str,
) -> Figure | None:
    """One bar per (row, column) estimate, grouped by row, with its interval as error bars."""
    if not bars:
        return None
    fig = _figure(9.0, 3.0, bottom=0.8, left=0.8)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(table.columns))
    used = []
    for i, j, column, est in bars:
        x = i - 0.4 + width * (j + 0.5)
        err: Any = None
        if est.low is not None and est.high is not None:
            err = [[est.value - est.low], [est.high - est.value]]
        ax.bar([x], [est.value], width=width * 0.9, color=colours[column.key], yerr=err, capsize=3)
        used.append(column.key)
    ax.set_xticks(range(len(rows)), [r.engine_key for r in rows], rotation=15)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    _legend(ax, table, colours, used)
    return fig


def _charts_html(table: ComparisonTable, charts: ChartData | None, svgs: dict[str, str]) -> list[str]:
    out = []
    for kind, ident, caption, fig in chart_figures(table, charts):
        svgs[ident] = _svg(fig)
        out.append(_figure_html(kind, ident, caption, svgs[ident]))
    if charts is None:
        out.insert(0, "<p>No sample data was given: distribution and sustained charts are left out.</p>")
    if not any('data-chart="cost-per-million"' in part for part in out):
        out.append(
            "<p>No cost figures in this table (nodes need hourly_usd in the inventory, and a cost or "
            "capex table).</p>"
        )
    return out


def _legend(ax: Axes, table: ComparisonTable, colours: dict[str, str], used: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=colours[c.key], label=clean(c.label)) for c in table.columns if c.key in used]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _distribution_figure(
    table: ComparisonTable, rows: Sequence[Row], charts: ChartData, colours: dict[str, str]
) -> Figure | None:
    by_key = {(d.row, d.column): d for d in charts.distributions}
    columns = [c for c in table.columns if any((r.key, c.key) in by_key for r in rows)]
    if not columns:
        return None
    fig = _figure(9.0, 0.7 + 0.3 * len(rows) * len(columns) + 0.15 * len(rows), left=2.3)
    ax = fig.add_subplot()
    positions, labels, used = [], [], []
    y = 0.0
    for row in rows:
        for column in columns:
            dist = by_key.get((row.key, column.key))
            if dist is None:
                continue
            y += 1
            parts = ax.violinplot(
                [list(dist.quantiles_ms)],
                positions=[y],
                orientation="horizontal",
                widths=0.85,
                showmedians=True,
                showextrema=True,
            )
            bodies: Any = parts["bodies"]  # a list of PolyCollection, typed as one Collection
            for body in bodies:
                body.set_facecolor(colours[column.key])
                body.set_edgecolor(colours[column.key])
                body.set_alpha(0.6)
            for name in ("cmedians", "cmins", "cmaxes", "cbars"):
                if name in parts:
                    parts[name].set_color(colours[column.key])
            positions.append(y)
            labels.append(f"{row.engine_key} · n={dist.n}")
            used.append(column.key)
        y += 0.5
    ax.set_yticks(positions, labels)
    ax.invert_yaxis()
    ax.set_xlabel("latency (ms)")
    ax.grid(axis="x", alpha=0.3)
    _legend(ax, table, colours, used)
    return fig


def _cells_of(table: ComparisonTable, rows: Sequence[Row]) -> Iterator[tuple[int, Row, int, Column, Cell]]:
    for i, row in enumerate(rows):
        for j, column in enumerate(table.columns):
            cell = table.cell(row.key, column.key)
            if cell is not None:
                yield i, row, j, column, cell


def _p95_figure(table: ComparisonTable, rows: Sequence[Row], colours: dict[str, str]) -> Figure | None:
    points = [(i, j, col, cell) for i, _, j, col, cell in _cells_of(table, rows) if cell.p95_ms is not None]
    if not points:
        return None
    fig = _figure(9.0, 3.2, bottom=0.8)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(table.columns))
    used = []
    for i, j, column, cell in points:
        est = cell.p95_ms
        assert est is not None
        x = i - 0.4 + width * (j + 0.5)
        low = est.value - est.low if est.low is not None else 0.0
        high = est.high - est.value if est.high is not None else 0.0
        ax.errorbar([x], [est.value], yerr=[[low], [high]], fmt="o", color=colours[column.key], capsize=3)
        used.append(column.key)
    budgets = {row.budget_ms for row in rows if row.budget_ms is not None}
    for budget in sorted(budgets):
        ax.axhline(budget, color="#555", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(rows)), [r.engine_key for r in rows], rotation=15)
    ax.set_ylabel("p95 (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    _legend(ax, table, colours, used)
    return fig


def _sustained_figure(table: ComparisonTable, column: Column, charts: ChartData) -> tuple[Figure | None, int]:
    rows = {r.key: r for r in table.rows}
    series = [s for s in charts.sustained if s.column == column.key and s.row in rows]
    if not series:
        return None, 0
    drawn, left_out = series[:MAX_SUSTAINED_PANELS], max(0, len(series) - MAX_SUSTAINED_PANELS)
    ncols = 2 if len(drawn) > 1 else 1
    nrows = -(-len(drawn) // ncols)
    fig = _figure(9.0, 0.3 + 1.7 * nrows, left=0.7, right=0.25, bottom=0.45, top=0.3, hspace=0.7, wspace=0.2)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    axes = [ax for line in grid for ax in line]
    for ax in axes[len(drawn) :]:
        ax.set_visible(False)
    for ax, s in zip(axes, drawn, strict=False):
        for band in s.bands:
            ax.axvspan(
                band.start_s,
                band.end_s,
                color=THERMAL_COLOURS.get(band.state, "#eeeeee"),
                zorder=0,
                linewidth=0,
            )
        ax.plot(s.t_s, s.p50_ms, color="#1f77b4", linewidth=1.2, label="median")
        ax.plot(s.t_s, s.p95_ms, color="#d62728", linewidth=1.0, label="p95")
        if s.sustained_from_s is not None:
            ax.axvline(s.sustained_from_s, color="#555", linestyle=":", linewidth=1)
        row = rows[s.row]
        ax.set_title(f"{row.workload}/{row.bucket} {row.engine_key}", fontsize=9, loc="left")
        ax.set_ylabel("ms")
        ax.set_xlabel("s", fontsize=8, loc="right")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8, frameon=False)
    return fig, left_out
