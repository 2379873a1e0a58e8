"""The export dialog: every format of the export registry, plus the acceptance bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, OptionList
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from fleet_tui.analysis.tables import ComparisonTable

BUNDLE = "bundle"
"""The option that writes the run's acceptance bundle instead of one rendered table."""


class ExportDialog(ModalScreen[Path | None]):
    """Pick a format, edit the path, Enter writes the file. Dismisses with the path written."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "write", "Write", priority=True),
    ]

    def __init__(self, table: ComparisonTable, folder: Path | None = None) -> None:
        super().__init__()
        self.table = table
        self.folder = folder or Path()  # relative: written under the working directory

    def compose(self) -> ComposeResult:
        from fleet_tui.export import FORMATS

        with Vertical(id="export-dialog"):
            yield Label(f"Export {self.table.title}", id="export-title")
            options = [Option(f"{f.name:5} {f.description}", id=f.name) for f in FORMATS.values()]
            options.append(Option(f"{BUNDLE} the run's hashed acceptance bundle (.tar.gz)", id=BUNDLE))
            yield OptionList(*options, id="export-formats")
            yield Input(id="export-path", placeholder="file to write")
        yield Footer()

    def on_mount(self) -> None:
        formats = self.query_one(OptionList)
        formats.highlighted = 0
        formats.focus()
        self._suggest()

    @property
    def chosen(self) -> str:
        formats = self.query_one(OptionList)
        index = formats.highlighted or 0
        return formats.get_option_at_index(index).id or "md"

    def _suggest(self) -> None:
        from fleet_tui.export import FORMATS

        runs = "-".join(str(r) for r in self.table.run_ids) or "table"
        name = self.chosen
        suffix = ".tar.gz" if name == BUNDLE else FORMATS[name].suffix
        stem = f"run-{runs}-bundle" if name == BUNDLE else f"compare-run-{runs}"
        self.query_one(Input).value = str(self.folder / f"{stem}{suffix}")

    @on(OptionList.OptionHighlighted)
    def _highlighted(self) -> None:
        self._suggest()

    @on(OptionList.OptionSelected)
    def _selected(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_write()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_write(self) -> None:
        self._write(self.chosen, Path(self.query_one(Input).value).expanduser())

    @work(thread=True, exclusive=True, exit_on_error=False, group="export", description="Writing the export")
    def _write(self, fmt: str, path: Path) -> Path | None:
        from fleet_tui.export import ExportError, render_from_store
        from fleet_tui.export.bundle import BundleError
        from fleet_tui.store import Store, StoreError

        db_path = getattr(self.app, "db_path", None)
        try:
            if db_path is None:
                raise StoreError("no store")
            with Store.open(db_path) as store:
                if fmt == BUNDLE:
                    from fleet_tui.analysis.compare import CompareError
                    from fleet_tui.export import bundle
                    from fleet_tui.export.report import report_files

                    if len(self.table.run_ids) != 1:
                        raise BundleError("a bundle holds one run: open a single run in Compare")
                    run_id = self.table.run_ids[0]
                    try:
                        extra = report_files(store, run_id)  # the same exports and charts as the CLI's
                    except CompareError:
                        extra = {}
                    written = bundle.write(bundle.collect(store, run_id, extra), path)
                else:
                    path.write_bytes(render_from_store(self.table, fmt, store))
                    written = path
        except (OSError, StoreError, ExportError, BundleError) as exc:
            message = f"{path}: {getattr(exc, 'strerror', None) or exc}"
            self.app.call_from_thread(self.notify, message, title="Export failed", severity="error")
            return None
        self.app.call_from_thread(self.notify, f"wrote {written}", title="Export")
        return written

    @on(Worker.StateChanged)
    def _written(self, event: Worker.StateChanged) -> None:
        # Dismissed only once the worker has finished: dismissing from inside it would cancel it.
        if event.worker.group == "export" and event.state is WorkerState.SUCCESS and event.worker.result:
            self.dismiss(event.worker.result)
