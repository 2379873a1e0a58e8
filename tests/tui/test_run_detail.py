"""Run detail on a fixed stored run (tests/export_fixture.py), driven with Pilot: opened from Runs
(`d`) and from its own key, the cells table shows the table model's figures, compute-plan shares
and numeric gate, and the three plots draw the chart data the HTML report draws."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import export_fixture
import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TabbedContent
from textual.worker import Worker, WorkerState
from textual_plot import PlotWidget
from textual_plot.plot_widget import BarPlot, ErrorBarPlot, LinePlot, ScatterPlot

from fleet_tui.app.app import FleetApp
from fleet_tui.app.commands import FleetCommands
from fleet_tui.app.screens.compare import CompareScreen
from fleet_tui.app.screens.run_detail import RunDetailScreen, histogram, load_detail
from fleet_tui.app.screens.runs import RunsScreen
from fleet_tui.config.inventory import Node
from fleet_tui.export.chart_data import Distribution, chart_data
from fleet_tui.fleet.transport.base import SshSettings
from fleet_tui.store import Store

Settle = Callable[[Pilot[Any]], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("detail") / "fixture.db"
    export_fixture.build(
        db, nodes=export_fixture.NODES[:2], runs=2, samples_per_run=140, sustained_samples=150
    ).store.close()
    return db


def app_on(db: Path | None, tmp_path: Path) -> FleetApp:
    # A node nothing listens for: its probe fails at once, so the tests wait on nothing slow.
    refused = Node(name="nowhere", host="127.0.0.1", port=9, source="test")
    return FleetApp([refused], SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None), db_path=db)


def run_detail_loads(messages: list[Message]) -> list[Message]:
    return [
        m
        for m in messages
        if isinstance(m, Worker.StateChanged)
        and m.state is WorkerState.RUNNING
        and m.worker.group == "run-detail"
    ]


def datasets(plot: PlotWidget) -> list[object]:
    # textual-plot keeps what was drawn in a private list; it is what the canvas renders.
    return list(plot._datasets)


def test_histogram_holds_the_inner_quantiles() -> None:
    quantiles = tuple(1.0 + i / 100 for i in range(101))
    centres, shares = histogram(Distribution("r", "c", 500, quantiles), 1.0, 2.0, bins=10)
    assert len(centres) == len(shares) == 10
    assert centres[0] == pytest.approx(1.05) and centres[-1] == pytest.approx(1.95)
    assert sum(shares) == pytest.approx(100.0)
    # Uniform in, flat out (a sample on a bin edge may fall either side).
    assert all(share == pytest.approx(10.0, abs=2.1) for share in shares)


def test_no_store_says_so(tmp_path: Path) -> None:
    detail, message = load_detail(tmp_path / "missing.db", None)
    assert detail is None and message is not None and "no store" in message


async def test_runs_d_opens_the_run_with_its_figures_and_plots(
    stored_run: Path, settle: Settle, tmp_path: Path
) -> None:
    app = app_on(stored_run, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        run_id = runs.runs[0].id
        await pilot.press("d")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and app.current_mode == "run_detail"
        assert screen.detail is not None and screen.detail.run_id == run_id
        table = screen.detail.table

        # One line per cell of the table model, with its figures as the model gives them.
        grid = screen.query_one("#detail-cells", DataTable)
        assert grid.row_count == len(table.cells) == 12
        coreml = next(c for c in table.cells if "coreml" in c.row)
        line = grid.get_row(f"{coreml.row}|{coreml.column}")
        headers = [str(c.label) for c in grid.columns.values()]
        row = dict(zip(headers, line, strict=True))
        assert (row["ANE"], row["GPU"], row["CPU"]) == ("80%", "0%", "20%")  # the compute plan's shares
        assert row["ops (fallback)"] == "12 (1)"
        assert row["numeric max rel (tol)"] == "ok 2.0e-03 (1e-02)" and row["cosine"] == "0.999990"
        assert coreml.p50_ms is not None and row["p50 ms"].startswith(f"{coreml.p50_ms.value:.4}"[:4])

        # The plots draw the report's chart data for the cell under the cursor.
        first = screen._cells[0]
        assert screen.selected == (first.row, first.column)
        with Store.open(stored_run) as store:
            charts = chart_data(store, table)
        distribution = screen.query_one("#distribution-plot", PlotWidget)
        lines = [d for d in datasets(distribution) if isinstance(d, LinePlot)]
        assert len(lines) == len([d for d in charts.distributions if d.row == first.row]) == 2  # per chip
        # The other plots are drawn when their tab opens (p).
        sustained = screen.query_one("#sustained-plot", PlotWidget)
        assert datasets(sustained) == []
        await pilot.press("p")
        await pilot.pause()
        drawn = datasets(sustained)
        series = next(s for s in charts.sustained if (s.row, s.column) == screen.selected)
        lines_y = [list(d.y) for d in drawn if isinstance(d, LinePlot)]
        assert lines_y == [list(series.p50_ms), list(series.p95_ms)]
        assert any(isinstance(d, BarPlot) for d in drawn), "the thermal states are drawn as a strip"
        assert [v.x for v in sustained._v_lines] == [series.sustained_from_s]
        await pilot.press("p")
        await pilot.pause()
        medians = screen.query_one("#medians-plot", PlotWidget)
        bars = [d for d in datasets(medians) if isinstance(d, ErrorBarPlot)]
        assert len(bars) == 1 and len(bars[0].x) == 2  # one interval per chip
        cells = [table.cell(first.row, c.key) for c in table.columns]
        for centre, half, cell in zip(bars[0].y, bars[0].yerr, cells, strict=True):
            assert cell is not None and cell.p50_ms is not None
            assert (centre - half, centre + half) == pytest.approx((cell.p50_ms.low, cell.p50_ms.high))
        points = [d for d in datasets(medians) if type(d) is ScatterPlot]
        assert sorted(points[0].y) == sorted(v for c in cells if c for v in c.per_run_p50_ms)

        # Moving the cursor redraws the shown plot for the next cell (the same row's other chip:
        # the medians stay), and the sustained plot once its tab opens again.
        before = [id(d) for d in datasets(medians)]
        await pilot.press("down")
        await pilot.pause()
        second = screen._cells[1]
        assert screen.selected == (second.row, second.column) and second.row == first.row
        assert [id(d) for d in datasets(medians)] == before
        await pilot.press("p", "p")
        await pilot.pause()
        note = screen.query_one("#sustained-note", Static)
        assert second.column in str(note.render())
        series = next(s for s in charts.sustained if (s.row, s.column) == screen.selected)
        lines_y = [list(d.y) for d in datasets(sustained) if isinstance(d, LinePlot)]
        assert lines_y == [list(series.p50_ms), list(series.p95_ms)]


async def test_p_cycles_the_plots_and_o_opens_the_same_run_in_compare(
    stored_run: Path, settle: Settle, tmp_path: Path
) -> None:
    app = app_on(stored_run, tmp_path)
    messages: list[Message] = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("g")  # the app-wide key: the latest run
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.detail is not None
        tabs = screen.query_one(TabbedContent)
        seen = [tabs.active]
        for _ in range(3):
            await pilot.press("p")
            await pilot.pause()
            seen.append(tabs.active)
        assert seen == ["distribution", "sustained", "medians", "distribution"]
        loads = len(run_detail_loads(messages))
        await pilot.press("r")
        await settle(pilot)
        assert len(run_detail_loads(messages)) == loads + 1, "r rereads the run"
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.table is not None and app.screen.table.run_ids == (screen.detail.run_id,)


async def test_without_a_store_the_screen_says_why(settle: Settle, tmp_path: Path) -> None:
    app = app_on(tmp_path / "none.db", tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.detail is None
        assert "no store" in str(screen.query_one("#detail-notes", Static).render())
        assert screen.query_one("#detail-cells", DataTable).row_count == 0


async def test_palette_offers_run_detail_and_the_runs_screen_key(
    stored_run: Path, settle: Settle, tmp_path: Path
) -> None:
    app = app_on(stored_run, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        names = [name for name, _help, _run in FleetCommands(app.screen)._commands()]
        assert "Open Run detail" in names and "Run detail" in names
