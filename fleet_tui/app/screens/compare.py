"""Compare: the SoC table model of stored runs side by side, coloured by verdict.

Everything shown comes from analysis' table model (soc_table / run_vs_run_table / add_costs);
this screen only lays it out and hands it to the export registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static
from textual.widgets.data_table import Row, RowKey

from fleet_tui.app.screens.base import FleetAppScreen
from fleet_tui.display import clean

if TYPE_CHECKING:
    from fleet_tui.analysis.tables import Cell, ComparisonTable

TOGGLE_METRICS = ("p50", "p95", "cold", "drift", "share", "cost", "energy")
"""The metric toggle's order (m cycles through them); the table model's own metric names."""


def cell_text(cell: Cell | None, metric: str) -> str:
    """The figure the metric asks for, then the ratio sentence the table model wrote."""
    from fleet_tui.export.text import estimate_text

    if cell is None:
        return ""
    if cell.state != "done":
        return clean(f"{cell.state}: {cell.reason or ''}", 60)
    if metric == "share":
        figure = " ".join(f"{s.device.upper()} {s.cost_share * 100:.0f}%" for s in cell.compute_share) or "-"
    elif metric == "cost":
        cost = cell.cost.cost_per_million_usd if cell.cost is not None else None
        figure = "$" + estimate_text(cost) + "/M" if cost is not None else "-"
    elif metric == "energy":
        energy = cell.energy
        if energy is None:
            figure = "no power reader"
        elif energy.status != "ok":
            figure = clean(energy.status, 40)
        else:
            watts = f" · {energy.watts_soc:.2f} W" if energy.watts_soc is not None else ""
            figure = estimate_text(energy.j_per_inference, 3) + " J/inf" + watts
    else:
        chosen = {"p50": cell.p50_ms, "p95": cell.p95_ms, "cold": cell.cold_start_ms, "drift": cell.drift}
        figure = estimate_text(chosen[metric])
    if cell.ratio is not None and cell.ratio.text:
        figure += f"  {cell.ratio.text}"
    badges = " ".join(f"[{g.gate}:{g.verdict}]" for g in cell.gates if g.verdict != "pass")
    return f"{figure} {badges}".strip()


def verdict_class(cell: Cell | None) -> str | None:
    """The component class that colours a cell: a failed gate first, then the ratio's verdict."""
    if cell is None or cell.state != "done":
        return None
    if any(g.verdict == "fail" for g in cell.gates):
        return "compare--gate-fail"
    if cell.ratio is None:
        return None
    return {
        "faster": "compare--faster",
        "slower": "compare--slower",
        "no_significant_difference": "compare--same",
    }.get(cell.ratio.verdict, "compare--insufficient")


@dataclass(frozen=True)
class GridLayout:
    """The table model as the screen lays it out: every cell's words and colour class, and column
    widths that show every figure whole. Pure, so it is built in the worker thread with the model."""

    row_keys: list[str]
    labels: list[str]
    column_keys: list[str]
    column_labels: list[str]
    widths: list[int]
    """The label column's width, then each node column's."""
    texts: list[list[str]]
    classes: list[list[str | None]]


def grid_layout(table: ComparisonTable) -> GridLayout:
    labels = [clean(f"{row.workload} {row.bucket} {row.engine_key}", 60) for row in table.rows]
    # One index instead of ComparisonTable.cell per pair (a scan each: quadratic on big tables).
    by_key = {(c.row, c.column): c for c in table.cells}
    texts: list[list[str]] = []
    classes: list[list[str | None]] = []
    for row in table.rows:
        cells = [by_key.get((row.key, column.key)) for column in table.columns]
        texts.append([cell_text(cell, table.metric) for cell in cells])
        classes.append([verdict_class(cell) for cell in cells])
    column_labels = [
        clean(column.label, 40) + (" (baseline)" if column.is_baseline else "") for column in table.columns
    ]
    widths = [max([4, *map(len, labels)])]
    for index, label in enumerate(column_labels):
        widths.append(max([len(label), *(len(values[index]) for values in texts)]))
    return GridLayout(
        row_keys=[row.key for row in table.rows],
        labels=labels,
        column_keys=[column.key for column in table.columns],
        column_labels=column_labels,
        widths=widths,
        texts=texts,
        classes=classes,
    )


class _GridCell:
    """One cell's words and colour class; its Text is made only when the row is drawn (a 5,000-row
    table draws one screenful), so filling the table costs one small object a cell."""

    __slots__ = ("css", "grid", "text")

    def __init__(self, text: str, css: str | None, grid: CompareTable) -> None:
        self.text, self.css, self.grid = text, css, grid

    def __rich__(self) -> Text:
        return Text(self.text, style=self.grid.verdict_style(self.css))

    def __str__(self) -> str:
        return self.text


class CompareTable(DataTable[_GridCell]):
    """The table model's rows x columns; verdict colours are component classes (theme variables)."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "compare--faster",
        "compare--slower",
        "compare--same",
        "compare--insufficient",
        "compare--gate-fail",
    }
    DEFAULT_CSS = """
    CompareTable > .compare--faster { color: $success; }
    CompareTable > .compare--slower { color: $error; }
    CompareTable > .compare--same { color: $text-muted; }
    CompareTable > .compare--insufficient { color: $warning; text-style: italic; }
    CompareTable > .compare--gate-fail { color: $error; text-style: bold; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's own name
        # The row label (workload / bucket / engine) stays put when the columns scroll.
        super().__init__(id=id, cursor_type="cell", zebra_stripes=True, fixed_columns=1)
        self._styles: dict[str, Style] = {}

    def verdict_style(self, css: str | None) -> Style | str:
        if css is None:
            return ""
        if css not in self._styles:  # one lookup per verdict class, not per cell
            self._styles[css] = self.get_component_rich_style(css, partial=True)
        return self._styles[css]

    def show_table(self, table: ComparisonTable) -> None:
        self.show_layout(grid_layout(table))

    def show_layout(self, layout: GridLayout) -> None:
        self.clear(columns=True)
        self._styles.clear()
        # Explicit widths: every figure is shown whole (the table scrolls sideways instead).
        self.add_column("cell", key="cell", width=layout.widths[0])
        for key, label, width in zip(
            layout.column_keys, layout.column_labels, layout.widths[1:], strict=True
        ):
            self.add_column(label, key=key, width=width)
        rows = [
            (
                key,
                [_GridCell(label, None, self)]
                + [_GridCell(t, c, self) for t, c in zip(texts, css, strict=True)],
            )
            for key, label, texts, css in zip(
                layout.row_keys, layout.labels, layout.texts, layout.classes, strict=True
            )
        ]
        self._add_rows_at_once(rows)

    def _add_rows_at_once(self, rows: list[tuple[str, list[_GridCell]]]) -> None:
        """DataTable.add_row, minus its per-row work: each call sets the cursor reactive and sorts
        the columns, and each added row is measured cell by cell on idle, ~0.3 ms a row (1.4 s at
        5,000 rows). Every column here has an explicit width and every row is one line high, so
        nothing needs measuring: the rows go in as add_row would store them (Textual is pinned
        exactly; tests/tui checks this table's cells and its snapshot), then the cursor and size
        update once."""
        columns = self.ordered_columns
        for key, cells in rows:
            row_key = RowKey(key)
            self._row_locations[row_key] = len(self.rows)
            self._data[row_key] = {column.key: cell for column, cell in zip(columns, cells, strict=True)}
            self.rows[row_key] = Row(row_key, 1)
        self._require_update_dimensions = True  # the virtual size; no row is left to measure
        self._update_count += 1
        self.cursor_coordinate = self.cursor_coordinate
        if rows and self.show_cursor and self.cursor_type != "none":
            self._highlight_cursor()
        self.check_idle()


class CompareScreen(FleetAppScreen[None]):
    """The comparison of the runs picked on the Runs screen (the latest run by default)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "next_metric", "Metric"),
        Binding("b", "next_baseline", "Baseline"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.metric = "p95"
        self.baseline: str | None = None
        self.table: ComparisonTable | None = None
        self.run_ids: tuple[int, ...] = ()
        self.export_when_ready = False
        """Set by the Runs screen's export key: open the export dialog once the table is built."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="compare-notes")
        yield CompareTable(id="compare-table")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CompareTable).border_title = "compare"

    def on_screen_resume(self) -> None:
        from fleet_tui.app.app import FleetApp

        wanted = self.app.compare_runs if isinstance(self.app, FleetApp) else ()
        if self.table is None or wanted != self.run_ids:
            self.run_ids = wanted
            self.reload()
        elif self.export_when_ready:
            self.export_when_ready = False
            self.action_export()

    def reload(self) -> None:
        self._build(self.run_ids, self.metric, self.baseline)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare", description="Building the table")
    def _build(self, run_ids: tuple[int, ...], metric: str, baseline: str | None) -> None:
        table, message = build_table(self.app, run_ids, metric, baseline)
        layout = grid_layout(table) if table is not None else None
        self.app.call_from_thread(self._show, table, message, layout)

    def _show(
        self, table: ComparisonTable | None, message: str | None, layout: GridLayout | None = None
    ) -> None:
        self.table = table
        notes = self.query_one("#compare-notes", Static)
        grid = self.query_one(CompareTable)
        if table is None:
            grid.clear(columns=True)
            notes.update(Text(message or "nothing to compare"))
            return
        self.run_ids = table.run_ids
        self.sub_title = f"{table.title} · metric {table.metric}"
        lines = [clean(w, 200) for w in table.warnings]
        if message:
            lines.append(message)
        notes.update(Text("\n".join(f"! {line}" for line in lines)))
        grid.show_layout(layout or grid_layout(table))
        if self.export_when_ready:
            self.export_when_ready = False
            self.action_export()

    def action_next_metric(self) -> None:
        index = TOGGLE_METRICS.index(self.metric) if self.metric in TOGGLE_METRICS else 0
        self.metric = TOGGLE_METRICS[(index + 1) % len(TOGGLE_METRICS)]
        self.reload()

    def action_next_baseline(self) -> None:
        if self.table is None or self.table.kind != "soc" or not self.table.columns:
            self.notify("baselines apply to a side-by-side table of one run's nodes", title="Baseline")
            return
        keys = [c.key for c in self.table.columns]
        current = self.table.baseline if self.table.baseline in keys else keys[0]
        self.baseline = keys[(keys.index(current) + 1) % len(keys)]
        self.reload()

    def action_export(self) -> None:
        if self.table is None:
            self.notify("nothing to export yet", title="Export", severity="warning")
            return
        from fleet_tui.app.dialogs.export import ExportDialog

        self.app.push_screen(ExportDialog(self.table))


def build_table(
    app: object, run_ids: tuple[int, ...], metric: str, baseline: str | None
) -> tuple[ComparisonTable | None, str | None]:
    """The table model for these runs (the latest run when none): (table, None) or (None, why).

    Two runs sharing nodes are run vs run; otherwise nodes side by side, as `fleet-tui compare`.
    """
    from fleet_tui.analysis.capex import DEFAULT_UTILISATION, add_costs, price_scale
    from fleet_tui.analysis.compare import CompareError, run_vs_run_table, soc_table
    from fleet_tui.analysis.evidence import load_run
    from fleet_tui.app.app import FleetApp
    from fleet_tui.store import Store, StoreError

    if not isinstance(app, FleetApp) or app.db_path is None or not app.db_path.is_file():
        return None, "no store yet: run a sweep first (fleet-tui sweep SPEC)"
    try:
        with Store.open(app.db_path) as store:
            ids = run_ids or tuple(r.id for r in store.list_runs()[:1])
            if not ids:
                return None, f"no runs in {app.db_path}: run a sweep first"
            runs = [load_run(store, run_id) for run_id in ids]
        ratio_metric = metric if metric in ("p50", "p95", "cold", "cost", "energy") else "p95"
        if len(runs) == 2 and {e.cell.node for e in runs[0].cells} & {e.cell.node for e in runs[1].cells}:
            return run_vs_run_table(runs[0], runs[1], metric=ratio_metric), None
        table = soc_table(runs, baseline=baseline, metric=ratio_metric, price_scale=price_scale)
        if metric == "cost":
            table = add_costs(table, runs, DEFAULT_UTILISATION)
        if metric != ratio_metric:
            import dataclasses

            table = dataclasses.replace(table, metric=metric)
        return table, None
    except (StoreError, CompareError) as exc:
        return None, str(exc)
