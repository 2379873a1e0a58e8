"""A sweep the TUI runs: the real scheduler in the app's event loop, and what the Live sweep
screen draws from it.

The sweep is an app worker (``app.run_worker``), not a screen's, so leaving the Live sweep
screen never stops it and the screen, reopened, draws the current state from the session.
`TuiProgress` is the scheduler's `Progress`: each event updates the session (plain data, cheap)
and tells the screens that listen with one `SweepChanged`, none more until the screen has drawn
(and `SweepChanged` replaces a pending one, ``can_replace``). The screen draws at most every
REDRAW_S, so however fast an agent streams samples the UI does a bounded amount of work and a
key press is never stuck behind a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from textual.message import Message

from fleet_tui.display import LINE_LIMIT, clean
from fleet_tui.sweep.counters import SweepCounters
from fleet_tui.sweep.events import Progress

if TYPE_CHECKING:
    from pathlib import Path

    from textual.message_pump import MessagePump
    from textual.worker import Worker

    from fleet_tui.app.app import FleetApp
    from fleet_tui.config.inventory import Node
    from fleet_tui.config.spec import SweepSpec
    from fleet_tui.store import Store
    from fleet_tui.sweep.scheduler import SweepResult

LOG_LINES: Final = 1000
"""The rolling event log's bound (the session's and the screen's RichLog): a long sweep keeps
the newest lines, never all of them."""
WARNING_LINES: Final = 50
"""Warnings kept for the screen's warning pane (each was also shown as a notification)."""

STATUS_ONLY: Final = frozenset({"node_status", "cell_progress", "cell_started", "samples", "thermal"})
"""Events that update a node's line but write no log line (as the CLI's status block)."""
FINAL: Final = frozenset({"complete", "incomplete", "interrupted", "failed"})


@dataclass
class SweepChanged(Message, bubble=False):
    """The session changed; redraw from it. Coalesced: only the latest pending one is handled."""

    session: SweepSession

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SweepChanged)


@dataclass
class SweepFinished(Message, bubble=False):
    """The sweep's worker ended (done, interrupted or failed); `session.status` says which."""

    session: SweepSession


@dataclass
class NodeProgress:
    """One node's line of the Live sweep screen."""

    name: str
    cells: set[int] = field(default_factory=set)
    """Cell ids this invocation runs on the node."""
    finished: set[int] = field(default_factory=set)
    """Of those, the ones with a final state (done, unsupported, failed or lost)."""
    status: str = "waiting"
    cell: str = ""
    """The cell being measured (its key), empty between cells."""
    samples: int = 0
    """Samples received for the current cell."""
    thermal: str | None = None
    """The node's last reported thermal pressure."""


class SweepSession:
    """Everything the TUI knows about one sweep it started: fed by `TuiProgress`, read by screens."""

    def __init__(self, spec: SweepSpec, targets: list[Node], resume_run: int | None = None) -> None:
        self.spec = spec
        self.targets = targets
        self.resume_run = resume_run
        self.run_id: int | None = resume_run
        self.status = "starting"
        self.nodes: dict[str, NodeProgress] = {n.name: NodeProgress(n.name) for n in targets}
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.logged = 0
        """Log lines ever appended: a screen writes those past its own count (the deque keeps
        the newest LOG_LINES of them)."""
        self.warnings: deque[str] = deque(maxlen=WARNING_LINES)
        self.samples = 0
        self.counters: SweepCounters | None = None
        self.cell_ids: dict[tuple[str, str], int] = {}
        self.stop = asyncio.Event()
        self.result: SweepResult | None = None
        self.error: str | None = None
        self.listeners: set[MessagePump] = set()
        self._unseen: set[MessagePump] = set()
        self.worker: Worker[None] | None = None

    @property
    def running(self) -> bool:
        return self.status not in FINAL

    def summary(self) -> str:
        """The screen's headline: run, spec, status, cells and ETA (the CLI's counters)."""
        run = f"run {self.run_id}" if self.run_id is not None else "new run"
        resumed = " (resumed)" if self.resume_run is not None else ""
        parts = [f"{run}{resumed} · {self.spec.name} · {self.status}"]
        if self.counters is not None:
            parts.append(self.counters.text() if self.running else self.counters.text().split(", ETA")[0])
        if self.result is not None:
            gates = self.result.report.counts()
            parts.append(
                f"gates {gates['pass']} pass, {gates['fail']} fail, {gates['inconclusive']} inconclusive"
            )
        if self.error:
            parts.append(self.error)
        return clean(" · ".join(parts), LINE_LIMIT)

    def add_log(self, text: str) -> None:
        self.log.append(clean(f"{datetime.now():%H:%M:%S} {text}", LINE_LIMIT))
        self.logged += 1

    def warn(self, text: str) -> None:
        self.warnings.append(clean(text, LINE_LIMIT))

    def start_cells(self, store: Store, run_id: int, resumed: bool) -> None:
        """The cells this invocation runs, as run_sweep chose them (per node, and for the ETA)."""
        cells = (
            store.unfinished_cells(run_id, self.spec.scheduler.max_attempts)
            if resumed
            else store.cells_for(run_id, states=["pending"])
        )
        self.counters = SweepCounters(cells, self.spec)
        for cell in cells:
            self.cell_ids[(cell.node, cell.key)] = cell.id
            self.nodes.setdefault(cell.node, NodeProgress(cell.node)).cells.add(cell.id)

    def finish_cell(self, node: str, key: str) -> None:
        cell_id = self.cell_ids.get((node, key))
        if cell_id is None:
            return
        self.nodes[node].finished.add(cell_id)
        if self.counters is not None:
            self.counters.finish(cell_id)

    def apply(self, kind: str, node: str | None, message: str, fields: dict[str, Any]) -> str | None:
        """Take one scheduler event; returns a warning to show at once, or None."""
        line = self.nodes.setdefault(node, NodeProgress(node)) if node is not None else None
        warning: str | None = None
        if kind == "samples" and line is not None:
            count = int(fields.get("count") or 0)
            line.samples += count
            self.samples += count
        elif kind == "thermal" and line is not None:
            state = fields.get("state")
            pressure = state.get("thermal_pressure") if isinstance(state, dict) else None
            before, line.thermal = line.thermal, clean(pressure, 20) if pressure is not None else None
            if line.thermal not in (None, "nominal", before):  # once per change, not per reading
                warning = f"{node}: thermal pressure {line.thermal} (node says)"
        elif kind == "artifact_build":
            self.status = "building artifacts"
        elif kind == "probe":
            if self.status in ("starting", "building artifacts"):
                self.status = "probing"
            if fields.get("ok") is False:
                warning = f"{node}: {message}"
        elif kind == "run_started":
            self.status = "running"
            self.run_id = int(fields["run_id"])
        elif kind == "cell_started" and line is not None:
            line.cell, line.samples = str(fields.get("cell", "")), 0
            cell_id = self.cell_ids.get((line.name, line.cell))
            if cell_id is not None:
                line.finished.discard(cell_id)  # a failed cell retried is ahead again
                if self.counters is not None:
                    self.counters.start(cell_id)  # its time calibrates the ETA, as the CLI's
        elif kind == "cell_result" and line is not None:
            self.finish_cell(line.name, str(fields.get("cell", "")))
            line.cell = ""
            flags = fields.get("flags") or []
            if "contended" in flags:
                warning = f"{node}: contention during {fields.get('cell')} (other work on the node)"
            elif "thermal_state_changed" in flags:
                warning = f"{node}: thermal state changed during {fields.get('cell')}"
        elif kind in ("node_lost", "node_done") and line is not None:
            if kind == "node_lost":
                line.finished |= line.cells  # its remaining cells are lost with it
                if self.counters is not None:
                    for cell_id in line.cells:
                        self.counters.finish(cell_id)
                warning = f"{node}: {message}"  # "lost: ..." or "skipped: busy ..."
            line.cell = ""
        elif kind in ("busy", "retry", "agent_error", "agent_warning"):
            warning = f"{node}: {message}"
        if line is not None and message and kind not in ("samples", "thermal"):
            line.status = clean(message, 200)
        if message and kind not in STATUS_ONLY:
            self.add_log(f"{node}: {message}" if node else message)
        if warning is not None:
            self.warn(warning)
        return warning

    def changed(self) -> None:
        """Tell every listening screen, once until it has drawn: a screen with a SweepChanged
        not yet handled gets no other (and `can_replace` folds any that were posted anyway)."""
        for listener in list(self.listeners):
            if listener not in self._unseen:
                self._unseen.add(listener)
                listener.post_message(SweepChanged(self))

    def seen(self, listener: MessagePump) -> None:
        """`listener` has drawn the current state: the next change is news to it again."""
        self._unseen.discard(listener)


class TuiProgress(Progress):
    """The scheduler's Progress inside the TUI: update the session, post `SweepChanged`, and
    show warnings (thermal pressure, contention, node lost, busy) as notifications at once."""

    def __init__(self, app: FleetApp, session: SweepSession, store: Store | None = None) -> None:
        self.app = app
        self.session = session
        self.store = store

    def emit(self, kind: str, *, node: str | None = None, message: str = "", **fields: Any) -> None:
        session = self.session
        warning = session.apply(kind, node, message, fields)
        if kind == "run_started" and self.store is not None:
            session.start_cells(self.store, int(fields["run_id"]), bool(fields.get("resumed")))
        if warning is not None:
            self.app.notify(clean(warning, LINE_LIMIT), title="Sweep", severity="warning", markup=False)
        session.changed()


async def run_session(app: FleetApp, session: SweepSession, db_path: Path) -> None:
    """The sweep worker: build the artifacts, then run the scheduler (as `fleet-tui sweep` does)."""
    from fleet_tui.fleet.session import FleetConnections
    from fleet_tui.store import Store, StoreError
    from fleet_tui.sweep.artifacts import ArtifactBuildError, coreml_precisions
    from fleet_tui.sweep.launch import build_artifacts, buildable_workloads, sweep_versions
    from fleet_tui.sweep.scheduler import Interrupted, run_sweep

    spec = session.spec
    try:
        with Store.open(db_path) as store:
            if session.resume_run is not None:
                # As `sweep --resume`: held until the store closes, so a second resume of this run
                # (here or headless) refuses instead of marking this one's running cells lost.
                lock = store.lock_run(session.resume_run)
                if lock.previous is not None:
                    session.add_log(
                        f"took over the lock of run {session.resume_run} from "
                        f"{lock.previous.describe()}, which is no longer running"
                    )
            progress = TuiProgress(app, session, store)
            artifacts = await build_artifacts(
                buildable_workloads(spec), coreml_precisions(spec.engines), progress, session.stop
            )
            # Its own connections: a sweep dropping a failed node's transport must not touch the
            # Fleet screen's, and they close with the sweep.
            async with FleetConnections(app.settings) as connections:
                result = await run_sweep(
                    store,
                    spec,
                    session.targets,
                    artifacts,
                    connections,
                    progress,
                    session.stop,
                    resume_run=session.resume_run,
                    versions=sweep_versions(connections, artifacts),
                )
        session.result = result
        session.run_id = result.run_id
        session.status = result.status
        session.add_log(f"run {result.run_id}: {result.status} in {result.wall_s:.1f} s")
    except Interrupted as exc:
        session.status = "interrupted"
        session.error = f"stopped while {exc.what}; nothing was stored"
    except (ArtifactBuildError, StoreError) as exc:
        session.status, session.error = "failed", str(exc)
    except Exception as exc:  # a bug: shown, never a silent dead worker
        session.status, session.error = "failed", f"{type(exc).__name__}: {exc}"
        app.log.error(f"sweep worker failed: {exc!r}")
    if session.error:
        session.add_log(session.error)
        app.notify(session.error, title="Sweep", severity="error", markup=False, timeout=30)
    else:
        app.notify(session.summary(), title="Sweep finished", markup=False)
    session.changed()
    for listener in [app, *session.listeners]:
        listener.post_message(SweepFinished(session))


def start_sweep(
    app: FleetApp, spec: SweepSpec, targets: list[Node], resume_run: int | None = None
) -> SweepSession | None:
    """Start a sweep as an app worker (None, with a notice, if one is running or there is no store)."""
    current = app.sweep
    if current is not None and current.running:
        app.notify("a sweep is running: cancel it first (Live sweep, x)", title="Sweep", severity="warning")
        return None
    if app.db_path is None:
        app.notify("no store: start fleet-tui with --db", title="Sweep", severity="error")
        return None
    session = SweepSession(spec, targets, resume_run)
    app.sweep = session
    session.worker = app.run_worker(
        run_session(app, session, app.db_path),
        name="sweep",
        group="sweep",
        description=f"Sweep {spec.name}",
        exit_on_error=False,
    )
    return session


def quit_after_sweep(app: FleetApp) -> None:
    """Exit now, or, with a sweep running, after a yes and once the sweep has stopped: a run left
    `running` by a killed worker could not be told from one still measuring elsewhere."""
    from fleet_tui.app.dialogs.confirm import ConfirmDialog

    session = app.sweep
    if session is None or not session.running:
        app.exit()
        return
    if isinstance(app.screen, ConfirmDialog):
        return  # already asking

    def answered(yes: bool | None) -> None:
        if not yes:
            return
        session.stop.set()
        session.status = "stopping"
        app.notify("stopping the sweep, then quitting", title="Quit")
        app.run_worker(_exit_when_stopped(app, session), name="quit", group="quit", exit_on_error=False)

    app.push_screen(
        ConfirmDialog(
            "A sweep is running. Stop it (agents stopped, data kept, the run marked interrupted and "
            "resumable from Runs) and quit?",
            yes="Stop and quit",
        ),
        answered,
    )


async def _exit_when_stopped(app: FleetApp, session: SweepSession) -> None:
    if session.worker is not None:
        with contextlib.suppress(Exception):  # its own failure was already reported
            await session.worker.wait()
    app.exit()
