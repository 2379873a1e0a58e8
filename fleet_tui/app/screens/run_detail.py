"""Run detail: one stored run's cells as a table (figures, compute-plan shares, numeric gate) and
three plots of the cell under the cursor: the latency distribution per chip, the sustained latency
over time with the node's thermal states, and per-run medians with their 95% interval.

Everything comes from the table model (`analysis.compare.soc_table`) and from the chart data the
HTML report draws (`export.chart_data`); this screen only lays figures out. textual-plot pulls in
numpy, so it is imported when the screen is built, never when the app starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from fleet_tui.app.screens.base import FleetAppScreen
from fleet_tui.display import clean

if TYPE_CHECKING:
    from textual_plot import PlotWidget

    from fleet_tui.analysis.tables import Cell, Column, ComparisonTable, Estimate
    from fleet_tui.export.chart_data import ChartData, Distribution, SustainedSeries

PLOTS = ("distribution", "sustained", "medians")
"""The plot tabs, in the order `p` cycles through them."""

DETAIL_COLUMNS = (
    "cell",
    "node",
    "chip",
    "n",
    "runs",
    "p50 ms",
    "p95 ms",
    "ANE",
    "GPU",
    "CPU",
    "ops (fallback)",
    "numeric max rel (tol)",
    "cosine",
    "gates",
)

HISTOGRAM_BINS = 24
SERIES_COLOURS = ("primary", "accent", "success", "warning", "secondary", "error")
"""Theme variables, one per chip in a plot: the plots follow the theme like the rest of the app."""
THERMAL_COLOURS = {"nominal": "success", "fair": "warning", "serious": "error", "critical": "error"}
THERMAL_STRIP = 0.05
"""The thermal band strip's height, as a fraction of the sustained plot's latency axis."""


@dataclass(frozen=True)
class RunDetail:
    """What the screen shows for one run: its table model and the report's chart data."""

    run_id: int
    title: str
    table: ComparisonTable
    charts: ChartData


def load_detail(db_path: Path | None, run_id: int | None) -> tuple[RunDetail | None, str | None]:
    """The run's detail (the latest run when `run_id` is None): (detail, None) or (None, why)."""
    from fleet_tui.analysis.capex import price_scale
    from fleet_tui.analysis.compare import CompareError, soc_table
    from fleet_tui.analysis.evidence import load_run
    from fleet_tui.export.chart_data import chart_data
    from fleet_tui.store import Store, StoreError

    if db_path is None or not db_path.is_file():
        return None, f"no store at {db_path}: run a sweep first (fleet-tui sweep SPEC)"
    try:
        with Store.open(db_path) as store:
            runs = store.list_runs()
            if run_id is None:
                if not runs:
                    return None, f"no runs in {db_path}: run a sweep first"
                run_id = runs[0].id
            name = next((r.name for r in runs if r.id == run_id), "")
            table = soc_table([load_run(store, run_id)], metric="p50", price_scale=price_scale)
            charts = chart_data(store, table)
    except (StoreError, CompareError) as exc:
        return None, str(exc)
    return RunDetail(run_id, f"run {run_id} {name}".strip(), table, charts), None


def estimate_ci(estimate: Estimate | None) -> str:
    """ "1.60 (1.54-1.66)": the figure and its interval, as the table model gives them."""
    from fleet_tui.export.text import estimate_text

    return estimate_text(estimate)


def detail_row(table: ComparisonTable, cell: Cell) -> tuple[str, ...]:
    """One line of the cells table: figures, compute-plan shares and the numeric gate's figures."""
    row = next(r for r in table.rows if r.key == cell.row)
    column = column_of(table, cell.column)
    label = clean(f"{row.workload} {row.bucket} {row.engine_key}", 60)
    node = clean(column.label if column else cell.column, 30)
    chip = clean(column.chip or "-", 30) if column else "-"
    if cell.state != "done":
        return (label, node, chip, "-", "-", clean(f"{cell.state}: {cell.reason or ''}", 60), *["-"] * 8)
    shares = {s.device: s.cost_share for s in cell.compute_share}

    def share(device: str) -> str:
        return f"{shares[device] * 100:.0f}%" if device in shares else "-"

    ops = "-" if cell.compute_ops is None else f"{cell.compute_ops} ({cell.fallback_ops or 0})"
    numeric = cosine = "-"
    if cell.numeric is not None:
        check = cell.numeric
        verdict = {True: "ok", False: "FAIL", None: "?"}[check.ok]
        tolerance = "" if check.tolerance_max_rel is None else f" ({check.tolerance_max_rel:.0e})"
        numeric = f"{verdict} {check.max_rel:.1e}{tolerance}" if check.max_rel is not None else verdict
        cosine = "-" if check.cosine is None else f"{check.cosine:.6f}"
    gates = " ".join(f"{g.gate}:{g.verdict}" for g in cell.gates) or "-"
    return (
        label,
        node,
        chip,
        str(cell.n),
        str(cell.runs),
        estimate_ci(cell.p50_ms),
        estimate_ci(cell.p95_ms),
        share("ane"),
        share("gpu"),
        share("cpu"),
        ops,
        numeric,
        cosine,
        clean(gates, 80),
    )


def column_of(table: ComparisonTable, key: str) -> Column | None:
    return next((c for c in table.columns if c.key == key), None)


def chip_label(table: ComparisonTable, key: str) -> str:
    """A plot's name for a column: the node, and its probed chip when known."""
    column = column_of(table, key)
    if column is None:
        return clean(key, 30)
    chip = f" ({clean(column.chip, 24)})" if column.chip else ""
    return clean(column.label, 24) + chip


def histogram(
    distribution: Distribution, low: float, high: float, bins: int = HISTOGRAM_BINS
) -> tuple[list[float], list[float]]:
    """Bin centres (ms) and the percent of samples in each bin, from the stored quantiles.

    The quantiles are evenly spaced (each step holds the same share of samples), so counting the
    inner quantiles per bin draws the distribution's shape; the extreme ones are left out so one
    outlier does not squash every chip into a single bin.
    """
    inner = distribution.quantiles_ms[1:-1]
    width = (high - low) / bins if high > low else 1.0
    counts = [0] * bins
    for value in inner:
        if low <= value <= high:
            counts[min(bins - 1, int((value - low) / width))] += 1
    centres = [low + (i + 0.5) * width for i in range(bins)]
    return centres, [100.0 * c / len(inner) for c in counts] if inner else [0.0] * bins


class RunDetailScreen(FleetAppScreen[None]):
    """A stored run in detail: the run picked on the Runs screen (`d`), the latest by default."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "next_plot", "Next plot"),
        Binding("r", "reload", "Reload"),
        Binding("o", "open_compare", "Open in Compare"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.detail: RunDetail | None = None
        self.run_id: int | None = None
        self.selected: tuple[str, str] | None = None
        """(row key, column key) of the cell the plots show."""
        self._cells: list[Cell] = []
        self._drawn: dict[str, object] = {}
        """What each plot tab last drew (a row, or a row and column), so it is drawn once."""

    def compose(self) -> ComposeResult:
        from textual_plot import PlotWidget

        yield Header()
        yield Static(id="detail-notes")
        table: DataTable[str] = DataTable(id="detail-cells", cursor_type="row", zebra_stripes=True)
        yield table
        with TabbedContent(id="detail-plots", initial="distribution"):
            for name, title in zip(PLOTS, ("Distribution", "Sustained", "Run medians"), strict=True):
                with TabPane(title, id=name), Vertical():
                    yield Static(id=f"{name}-note", classes="plot-note")
                    yield PlotWidget(id=f"{name}-plot", allow_pan_and_zoom=True)
        yield Footer()

    DEFAULT_CSS = """
    RunDetailScreen { layout: vertical; }
    #detail-notes { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    #detail-cells {
        height: 1fr;
        min-height: 4;
        border: round $panel;
        border-title-color: $text-muted;
        &:focus { border: round $primary; }
    }
    #detail-plots { height: 2fr; min-height: 10; }
    #detail-plots TabPane { padding: 0; }
    .plot-note { height: 2; padding: 0 1; color: $text-muted; }
    RunDetailScreen PlotWidget { height: 1fr; }
    """

    def on_mount(self) -> None:
        table = self.query_one("#detail-cells", DataTable)
        table.border_title = "cells"
        table.focus()

    def on_screen_resume(self) -> None:
        from fleet_tui.app.app import FleetApp

        wanted = self.app.detail_run if isinstance(self.app, FleetApp) else None
        if self.detail is None or (wanted is not None and wanted != self.run_id):
            self.run_id = wanted
            self.action_reload()

    def action_reload(self) -> None:
        self._load(self.run_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run-detail", description="Reading the run")
    def _load(self, run_id: int | None) -> None:
        detail, message = load_detail(getattr(self.app, "db_path", None), run_id)
        self.app.call_from_thread(self._show, detail, message)

    def _show(self, detail: RunDetail | None, message: str | None) -> None:
        self.detail = detail
        notes = self.query_one("#detail-notes", Static)
        table = self.query_one("#detail-cells", DataTable)
        table.clear(columns=True)
        if detail is None:
            self._cells = []
            self.sub_title = "no run"
            notes.update(Text(message or "no run"))  # may hold a path: never markup
            notes.display = True
            for name in PLOTS:
                self.query_one(f"#{name}-plot").display = False
            return
        self.run_id = detail.run_id
        self.sub_title = clean(detail.title, 80)
        self.selected = None
        self._drawn = {}
        warnings = [f"! {clean(w, 200)}" for w in detail.table.warnings[:2]]
        notes.update(Text("\n".join(warnings)))
        notes.display = bool(warnings)
        order = {row.key: i for i, row in enumerate(detail.table.rows)}
        columns = {column.key: i for i, column in enumerate(detail.table.columns)}
        self._cells = sorted(
            detail.table.cells, key=lambda c: (order.get(c.row, 0), columns.get(c.column, 0))
        )
        lines = [detail_row(detail.table, cell) for cell in self._cells]
        # Explicit widths: every figure is shown whole (the table scrolls sideways instead).
        for index, name in enumerate(DETAIL_COLUMNS):
            table.add_column(name, key=name, width=max([len(name), *(len(line[index]) for line in lines)]))
        for cell, line in zip(self._cells, lines, strict=True):
            table.add_row(*line, key=f"{cell.row}|{cell.column}")
        done = [c for c in self._cells if c.state == "done"]
        first = done[0] if done else (self._cells[0] if self._cells else None)
        if first is not None:
            table.move_cursor(row=self._cells.index(first))
            self._select(first)

    @on(DataTable.RowHighlighted, "#detail-cells")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self._cells):
            self._select(self._cells[event.cursor_row])

    def _select(self, cell: Cell) -> None:
        if self.selected == (cell.row, cell.column):
            return
        self.selected = (cell.row, cell.column)
        self.draw_plots()

    def _colour(self, name: str) -> str:
        variables = self.app.get_css_variables()
        return variables.get(name) or variables.get("foreground", "white")

    def draw_plots(self) -> None:
        """Draw the shown plot for the selected cell; the others wait until their tab opens.

        Drawing is the costly part of a cursor move, so only the visible plot is drawn, and only
        when what it shows changed (distribution and medians show the cell's row across chips,
        so moving between the chips of one row leaves them alone).
        """
        if self.detail is None or self.selected is None:
            return
        name = self.query_one("#detail-plots", TabbedContent).active
        row, column = self.selected
        key: object = (row, column) if name == "sustained" else row
        if self._drawn.get(name) == key:
            return
        self._drawn[name] = key
        if name == "distribution":
            self._draw_distribution(row)
        elif name == "sustained":
            self._draw_sustained(row, column)
        elif name == "medians":
            self._draw_medians(row)

    @on(TabbedContent.TabActivated, "#detail-plots")
    def _tab_activated(self) -> None:
        self.draw_plots()

    def _plot(self, name: str, note: str) -> PlotWidget:
        from textual_plot import PlotWidget

        # A fixed-height note: updating it needs no new layout (a cursor move stays cheap).
        self.query_one(f"#{name}-note", Static).update(Text(note), layout=False)
        plot = self.query_one(f"#{name}-plot", PlotWidget)
        plot.display = True
        plot.clear()
        return plot

    def _row_label(self, row_key: str) -> str:
        assert self.detail is not None
        row = next((r for r in self.detail.table.rows if r.key == row_key), None)
        return clean(f"{row.workload} {row.bucket} {row.engine_key}" if row else row_key, 60)

    def _draw_distribution(self, row: str) -> None:
        from textual_plot import HiResMode, LegendLocation

        assert self.detail is not None
        found = [d for d in self.detail.charts.distributions if d.row == row]
        plot = self._plot(
            "distribution",
            f"{self._row_label(row)}: measured latency per chip"
            if found
            else f"{self._row_label(row)}: no measured samples",
        )
        if not found:
            return
        low = min(d.quantiles_ms[1] for d in found)
        high = max(d.quantiles_ms[-2] for d in found)
        for index, distribution in enumerate(found):
            centres, shares = histogram(distribution, low, high)
            colour = self._colour(SERIES_COLOURS[index % len(SERIES_COLOURS)])
            label = f"{chip_label(self.detail.table, distribution.column)} n={distribution.n}"
            plot.plot(centres, shares, line_style=colour, hires_mode=HiResMode.BRAILLE, label=label)
        plot.set_xlabel("latency per call (ms)")
        plot.set_ylabel("% of samples")
        plot.set_ylimits(0, None)
        plot.show_legend(LegendLocation.TOPRIGHT)

    def _draw_sustained(self, row: str, column: str) -> None:
        from textual_plot import HiResMode, LegendLocation

        assert self.detail is not None
        series: SustainedSeries | None = next(
            (s for s in self.detail.charts.sustained if s.row == row and s.column == column), None
        )
        where = f"{self._row_label(row)} on {chip_label(self.detail.table, column)}"
        if series is None or not series.t_s:
            self._plot("sustained", f"{where}: no sustained phase in this run")
            self.query_one("#sustained-plot").display = False
            return
        states = sorted({b.state for b in series.bands})
        plot = self._plot(
            "sustained",
            f"{where}: p50 / p95 over time"
            + (f", thermal: {', '.join(states)}" if states else ", no thermal readings"),
        )
        top = max(series.p95_ms) * 1.1
        # Thermal states first, as a strip along the bottom, so the latency lines draw over them.
        for state in states:
            bands = [b for b in series.bands if b.state == state and b.end_s > b.start_s]
            if not bands:
                continue
            plot.bar(
                [(b.start_s + b.end_s) / 2 for b in bands],
                [top * THERMAL_STRIP] * len(bands),
                width=[b.end_s - b.start_s for b in bands],
                bar_style=self._colour(THERMAL_COLOURS.get(state, "secondary")),
                hires_mode=HiResMode.HALFBLOCK,
                label=f"thermal {state}",
            )
        plot.plot(series.t_s, series.p50_ms, self._colour("primary"), HiResMode.BRAILLE, label="p50")
        plot.plot(series.t_s, series.p95_ms, self._colour("accent"), HiResMode.BRAILLE, label="p95")
        if series.sustained_from_s is not None:
            plot.add_v_line(series.sustained_from_s, self._colour("secondary"), label="sustained from")
        plot.set_ylimits(0, top)
        plot.set_xlabel("seconds since the run's first sample")
        plot.set_ylabel("ms")
        plot.show_legend(LegendLocation.BOTTOMRIGHT)

    def _draw_medians(self, row: str) -> None:
        from textual_plot import LegendLocation
        from textual_plot.axis_formatter import CategoricalAxisFormatter

        assert self.detail is not None
        table = self.detail.table
        cells = [
            c
            for column in table.columns
            if (c := table.cell(row, column.key)) is not None and c.state == "done" and c.p50_ms
        ]
        plot = self._plot(
            "medians",
            f"{self._row_label(row)}: run medians (·), p50 (◆) and its 95% interval"
            if cells
            else f"{self._row_label(row)}: no finished cell",
        )
        if not cells:
            return
        positions = [float(i) for i in range(1, len(cells) + 1)]
        estimates = [c.p50_ms for c in cells if c.p50_ms is not None]
        with_ci = [
            (x, e)
            for x, e in zip(positions, estimates, strict=True)
            if e.low is not None and e.high is not None
        ]
        if with_ci:
            plot.errorbar(
                [x for x, _ in with_ci],
                [((e.low or 0.0) + (e.high or 0.0)) / 2 for _, e in with_ci],
                yerr=[((e.high or 0.0) - (e.low or 0.0)) / 2 for _, e in with_ci],
                marker_style=self._colour("primary"),
                label="95% interval of p50",
            )
        runs_x: list[float] = []
        runs_y: list[float] = []
        for x, cell in zip(positions, cells, strict=True):
            count = len(cell.per_run_p50_ms)
            # Runs spread a little sideways so equal medians stay visible as separate points.
            runs_x += [x + 0.25 * ((i + 1) / (count + 1) - 0.5) for i in range(count)]
            runs_y += list(cell.per_run_p50_ms)
        if runs_x:
            plot.scatter(runs_x, runs_y, marker="·", marker_style=self._colour("accent"), label="run median")
        plot.scatter(
            positions,
            [e.value for e in estimates],
            marker="◆",
            marker_style=self._colour("primary"),
            hires_mode=None,
            label="p50",
        )
        # The axis spans the intervals too (textual-plot scales to the points alone).
        spread = [*runs_y, *(e.value for e in estimates), *(e.low for _, e in with_ci if e.low is not None)]
        spread += [e.high for _, e in with_ci if e.high is not None]
        pad = (max(spread) - min(spread)) * 0.08 or max(spread) * 0.05
        plot.set_ylimits(max(0.0, min(spread) - pad), max(spread) + pad)
        labels = [chip_label(table, c.column) for c in cells]
        plot.set_x_formatter(CategoricalAxisFormatter(labels))
        plot.set_xticks(positions)
        plot.set_xlimits(0.5, len(cells) + 0.5)
        plot.set_ylabel("p50 ms")
        plot.show_legend(LegendLocation.TOPRIGHT)

    def action_next_plot(self) -> None:
        tabs = self.query_one("#detail-plots", TabbedContent)
        index = PLOTS.index(tabs.active) if tabs.active in PLOTS else 0
        tabs.active = PLOTS[(index + 1) % len(PLOTS)]

    async def action_open_compare(self) -> None:
        """The same run in Compare (its side-by-side table with verdicts and export)."""
        from fleet_tui.app.app import FleetApp

        if not isinstance(self.app, FleetApp) or self.run_id is None:
            self.notify("no run shown", title="Compare", severity="warning")
            return
        self.app.compare_runs = (self.run_id,)
        await self.app.switch_mode("compare")
