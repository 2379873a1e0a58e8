"""Live sweep: the sweep started here (or resumed from Runs), drawn from its session.

Per node a progress bar (cells finished of the cells this invocation runs), the cell being
measured and the node's last status; the cells-done and ETA line the CLI prints; warnings as
they happen; a rolling event log with a fixed bound. The sweep is the app's worker: leaving this
screen does not stop it, and the screen draws the current state whenever it is shown.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, ProgressBar, RichLog, Static

from fleet_tui.app.screens.base import FleetAppScreen
from fleet_tui.app.sweep_session import LOG_LINES, SweepChanged, SweepFinished, SweepSession
from fleet_tui.display import clean

if TYPE_CHECKING:
    from textual.timer import Timer

    from fleet_tui.app.sweep_session import NodeProgress

REDRAW_S = 0.1
"""The least time between two redraws while a sweep streams (10 frames a second)."""
NO_SWEEP = "no sweep started here: build one (w) or resume an interrupted run from Runs (u, then R)"
SHOWN_WARNINGS = 3


def node_line(progress: NodeProgress) -> str:
    """A node's status beside its bar: cells, the cell being measured, the last word from it."""
    parts = [f"{len(progress.finished & progress.cells)}/{len(progress.cells)} cells"]
    if progress.cell:
        parts.append(f"{progress.cell} ({progress.samples} samples)")
    if progress.thermal not in (None, "nominal"):
        parts.append(f"thermal {progress.thermal}")
    parts.append(progress.status)
    return clean(" · ".join(parts), 300)


class LiveSweepScreen(FleetAppScreen[None]):
    """Watch the sweep run; x cancels it (after a confirmation)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "cancel_sweep", "Cancel sweep"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.session: SweepSession | None = None
        self.written = 0
        """Log lines of the session already written to the RichLog (the session's `logged`)."""
        self.node_names: list[str] = []
        self.redraws = 0
        """How many times the screen redrew (the coalescing keeps this far below the events)."""
        self._last_redraw = 0.0
        self._deferred: Timer | None = None
        self._shown: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="live-summary")
        yield Vertical(id="live-nodes")
        yield Static(id="live-warnings")
        yield RichLog(max_lines=LOG_LINES, markup=False, highlight=False, wrap=False, id="live-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#live-nodes").border_title = "nodes"
        self.query_one("#live-log").border_title = "events"
        self.sub_title = "live sweep"
        self.redraw()

    def on_screen_resume(self) -> None:
        self.redraw()

    def on_unmount(self) -> None:
        if self.session is not None:
            self.session.listeners.discard(self)

    @on(SweepChanged)
    def _sweep_changed(self) -> None:
        # At most one redraw per REDRAW_S: the rest of the time goes to keys and other screens.
        wait = self._last_redraw + REDRAW_S - time.monotonic()
        if wait <= 0:
            self.redraw()
        elif self._deferred is None:
            self._deferred = self.set_timer(wait, self.redraw, name="live-sweep redraw")

    @on(SweepFinished)
    def _sweep_finished(self) -> None:
        self.redraw()

    def _bind(self, session: SweepSession | None) -> None:
        """Follow `session` (a new sweep replaces the one shown)."""
        if self.session is not None:
            self.session.listeners.discard(self)
            self.session.seen(self)
        self.session = session
        self.written = 0
        self.node_names = []
        self._shown = {}
        self.query_one("#live-log", RichLog).clear()
        self.query_one("#live-nodes").remove_children()
        if session is not None:
            session.listeners.add(self)

    def redraw(self) -> None:
        """Draw the session's current state (cheap: only new log lines are written, only
        changed text is updated)."""
        self.redraws += 1
        self._last_redraw = time.monotonic()
        if self._deferred is not None:
            self._deferred.stop()
            self._deferred = None
        session = getattr(self.app, "sweep", None)
        if session is not self.session:
            self._bind(session)
        if session is None:
            self._show(self.query_one("#live-summary", Static), NO_SWEEP)
            return
        session.seen(self)
        self._show(self.query_one("#live-summary", Static), session.summary())
        self._draw_nodes(session)
        self._draw_log(session)
        warnings = list(session.warnings)[-SHOWN_WARNINGS:]
        self._show(self.query_one("#live-warnings", Static), "\n".join(f"! {w}" for w in warnings))

    def _show(self, widget: Static, text: str) -> None:
        """Update `widget` only when its text changed (an update costs a layout pass)."""
        if self._shown.get(widget.id or "") != text:
            self._shown[widget.id or ""] = text
            widget.update(Text(text))

    def _draw_nodes(self, session: SweepSession) -> None:
        box = self.query_one("#live-nodes", Vertical)
        names = list(session.nodes)
        if names != self.node_names:
            box.remove_children()
            box.mount_all(
                Horizontal(
                    Static(Text(clean(name, 16)), classes="live-node-name"),
                    ProgressBar(total=None, show_eta=False, id=f"live-bar-{index}"),
                    Static(classes="live-node-status", id=f"live-status-{index}"),
                    classes="live-node",
                )
                for index, name in enumerate(names)
            )
            self.node_names = names
            self._shown = {k: v for k, v in self._shown.items() if not k.startswith("live-status-")}
            self.call_after_refresh(self.redraw)  # the rows exist from the next turn on
        for index, name in enumerate(names):
            progress = session.nodes[name]
            try:
                bar = box.query_one(f"#live-bar-{index}", ProgressBar)
                status = box.query_one(f"#live-status-{index}", Static)
            except Exception:  # mounted on the next turn: drawn by the next redraw
                continue
            if progress.cells:
                bar.update(total=len(progress.cells), progress=len(progress.finished & progress.cells))
            elif not session.running:
                bar.update(total=1, progress=1)  # nothing ran here: not an endless spinner
            self._show(status, node_line(progress))

    def _draw_log(self, session: SweepSession) -> None:
        new = session.logged - self.written
        if new <= 0:
            return
        log = self.query_one("#live-log", RichLog)
        for line in list(session.log)[-min(new, len(session.log)) :]:
            log.write(Text(line))
        self.written = session.logged

    def node_progress(self, name: str) -> tuple[float | None, float]:
        """A node's bar as (total, progress): what the operator sees (for tests)."""
        bar = self.query_one(f"#live-bar-{self.node_names.index(name)}", ProgressBar)
        return bar.total, bar.progress

    def action_cancel_sweep(self) -> None:
        """Stop the running sweep after a yes: agents stopped, data kept, the run interrupted."""
        from fleet_tui.app.dialogs.confirm import ConfirmDialog

        session = self.session
        if session is None or not session.running:
            self.notify("no sweep is running", title="Cancel", severity="warning")
            return
        if session.stop.is_set():
            self.notify("the sweep is already stopping", title="Cancel")
            return

        def answered(yes: bool | None) -> None:
            if yes and session.running:
                session.stop.set()
                session.status = "stopping"
                session.add_log("cancel requested: stopping the agents (data kept, run marked interrupted)")
                self.redraw()

        run = f"run {session.run_id}" if session.run_id is not None else "the sweep"
        self.app.push_screen(
            ConfirmDialog(
                f"Cancel {run} ({session.spec.name})? Agents are stopped, the data measured so far is "
                "kept and the run is marked interrupted; Runs can resume it.",
                yes="Cancel sweep",
            ),
            answered,
        )
