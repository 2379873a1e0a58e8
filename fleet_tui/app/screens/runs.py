"""Runs: every stored run (started here or headless), newest first, read from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from fleet_tui.app.screens.base import FleetAppScreen
from fleet_tui.display import clean

if TYPE_CHECKING:
    from fleet_tui.store.records import RunSummary

RUN_COLUMNS = ("pick", "id", "name", "status", "nodes", "cells", "gates", "started", "span")


def run_cells(run: RunSummary) -> tuple[str, ...]:
    """One row of the runs table: the same counts `fleet-tui runs` prints."""
    from datetime import datetime

    total = sum(run.cells.values())
    gates = " ".join(f"{verdict} {count}" for verdict, count in sorted(run.gates.items()) if count) or "-"
    span = "-"
    if run.finished_at:
        try:
            seconds = (
                datetime.fromisoformat(run.finished_at) - datetime.fromisoformat(run.started_at)
            ).total_seconds()
            span = f"{seconds:.0f} s"
        except ValueError:
            span = "?"
    return (
        str(run.id),
        clean(run.name, 30),
        run.status,
        clean(", ".join(run.nodes), 40),
        f"{run.cells.get('done', 0)}/{total}",
        gates,
        run.started_at[:19],
        span,
    )


class RunsScreen(FleetAppScreen[None]):
    """Enter opens a run in Compare; space picks runs (two picked: run vs run in Compare); R
    resumes an interrupted run in Live sweep."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "compare", "Compare"),
        Binding("d", "detail", "Run detail"),
        Binding("space", "pick", "Pick"),
        Binding("r", "reload", "Reload"),
        Binding("e", "export", "Export / bundle"),
        Binding("R", "resume", "Resume run", key_display="R"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunSummary] = []
        self.picked: list[int] = []

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str] = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="runs-hint")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.border_title = "runs"
        for column in RUN_COLUMNS:
            table.add_column(column, key=column)
        table.focus()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs", description="Reading the runs")
    def _load(self) -> None:
        from fleet_tui.store import Store

        db_path = getattr(self.app, "db_path", None)
        if db_path is None or not db_path.is_file():
            self.app.call_from_thread(self._show, [], f"no store at {db_path}: run a sweep first")
            return
        with Store.open(db_path) as store:
            runs = store.list_runs()
        self.app.call_from_thread(self._show, runs, None if runs else f"no runs in {db_path}")

    def _show(self, runs: list[RunSummary], message: str | None) -> None:
        self.runs = runs
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        for run in runs:
            table.add_row("*" if run.id in self.picked else "", *run_cells(run), key=str(run.id))
        self.sub_title = f"{len(runs)} run{'' if len(runs) == 1 else 's'}"
        self._hint(message)

    def _hint(self, message: str | None = None) -> None:
        picked = ", ".join(str(r) for r in self.picked)
        text = message or (
            f"picked {picked}: enter compares them (run vs run)" if self.picked else "space picks two runs"
        )
        self.query_one("#runs-hint", Static).update(Text(text))  # may hold a path: never markup

    def _cursor_run(self) -> int | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.runs or table.cursor_row < 0:
            return None
        return self.runs[min(table.cursor_row, len(self.runs) - 1)].id

    @on(DataTable.RowSelected)
    async def _row_selected(self) -> None:
        await self.action_compare()

    def action_pick(self) -> None:
        run_id = self._cursor_run()
        if run_id is None:
            self.notify("no run under the cursor", title="Pick", severity="warning")
            return
        if run_id in self.picked:
            self.picked.remove(run_id)
        else:
            self.picked = [*self.picked[-1:], run_id]  # at most two: the last two picked
        table = self.query_one("#runs-table", DataTable)
        for run in self.runs:
            table.update_cell(str(run.id), "pick", "*" if run.id in self.picked else "")
        self._hint()

    def _chosen(self) -> tuple[int, ...]:
        run_id = self._cursor_run()
        # Picked runs go oldest first: run vs run is the later run against the earlier reference.
        return tuple(sorted(self.picked)) if self.picked else (() if run_id is None else (run_id,))

    async def _open_compare(self, *, export: bool) -> None:
        from fleet_tui.app.app import FleetApp
        from fleet_tui.app.screens.compare import CompareScreen

        chosen = self._chosen()
        if not chosen:
            self.notify("no runs: run a sweep first", title="Runs", severity="warning")
            return
        app = self.app
        if not isinstance(app, FleetApp):
            return
        app.compare_runs = chosen
        await app.switch_mode("compare")
        screen = app.screen
        if isinstance(screen, CompareScreen) and export:
            if screen.table is not None and screen.table.run_ids == chosen:
                screen.action_export()  # already built for these runs
            else:
                screen.export_when_ready = True

    async def action_compare(self) -> None:
        """Open the picked runs (or the run under the cursor) in Compare."""
        await self._open_compare(export=False)

    async def action_detail(self) -> None:
        """Open the run under the cursor in Run detail (plots, compute plan, numeric gate)."""
        from fleet_tui.app.app import FleetApp

        run_id = self._cursor_run()
        if run_id is None:
            self.notify("no runs: run a sweep first", title="Runs", severity="warning")
            return
        if isinstance(self.app, FleetApp):
            self.app.detail_run = run_id
            await self.app.switch_mode("run_detail")

    async def action_export(self) -> None:
        """Export or bundle the picked run: Compare's export dialog, on that run's table."""
        await self._open_compare(export=True)

    def action_resume(self) -> None:
        """Resume the run under the cursor in Live sweep: what `fleet-tui sweep --resume N` does
        (the run's own spec, its unfinished cells, on the nodes that hold them)."""
        from fleet_tui.app.app import FleetApp
        from fleet_tui.app.sweep_session import start_sweep
        from fleet_tui.config.spec import SpecError
        from fleet_tui.store import Store, StoreError
        from fleet_tui.sweep.launch import ResumeError, read_resumable

        app = self.app
        run_id = self._cursor_run()
        if run_id is None or not isinstance(app, FleetApp) or app.db_path is None:
            self.notify("no run under the cursor", title="Resume", severity="warning")
            return
        try:
            with Store.open(app.db_path) as store:
                resumable = read_resumable(store, run_id, app.nodes)
        except (SpecError, StoreError, ResumeError) as exc:
            self.notify(str(exc), title="Not resumed", severity="error", markup=False)
            return
        if not resumable.unfinished and resumable.record.status == "complete":
            self.notify(f"run {run_id} is already complete: nothing to resume", title="Resume")
            return
        if start_sweep(app, resumable.spec, resumable.targets, resume_run=run_id) is not None:
            app.action_open_screen("live")
