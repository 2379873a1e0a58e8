"""What a running sweep tells its operator about where it is: per cell, the phase's counter in
words that match the spec (warmup n (max N), samples n (floor N)); per sweep, cells done/total and
an ETA.

The ETA starts as the plan's estimate (every inference at its bucket's budget, see `plan`) of the
cells not finished yet, on the busiest node (nodes run in parallel). Budgets are ceilings, so that
first figure is pessimistic; once cells have finished, each node's remaining estimate is scaled by
how long its finished cells really took against their estimates (the whole sweep's ratio for a
node with none finished yet). It is a guide, not a measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from fleet_tui.config.spec import SweepSpec
from fleet_tui.store import CellRow
from fleet_tui.sweep.plan import estimate_cell_seconds, format_duration


def phase_text(phase: Any, done: Any, total: Any, run: Any, runs: int) -> str:
    """One agent `progress` tick as words (run numbers from 1; the agent counts from 0)."""
    if phase == "run" and isinstance(done, int):
        return f"run {done + 1}/{total} starting"
    run_text = f"run {run + 1}/{runs} " if isinstance(run, int) else ""
    if phase == "warmup":
        return f"{run_text}warmup {done} (max {total})"
    if phase == "measure":
        return f"{run_text}samples {done} (floor {total})"
    if phase == "sustained":
        return f"{run_text}sustained {done} s of {total} s"
    if phase == "energy_idle":
        return f"{run_text}idle baseline for energy"
    if phase == "wait_nominal":
        return f"{run_text}waiting for nominal thermal pressure {done} s (max {total} s)"
    return f"{run_text}{phase} {done}/{total}"


class SweepCounters:
    """Cells done out of the cells this invocation runs, and the ETA of the rest."""

    def __init__(
        self, cells: Iterable[CellRow], spec: SweepSpec, clock: Callable[[], float] = time.monotonic
    ) -> None:
        budgets = {(w.name, b.name): b.budget_ms for w in spec.workloads for b in w.buckets}
        self.estimate: dict[int, tuple[str, float]] = {
            cell.id: (
                cell.node,
                estimate_cell_seconds(spec.measure, budgets.get((cell.workload, cell.bucket), 0.0)),
            )
            for cell in cells
        }
        self.finished: set[int] = set()
        self.clock = clock
        self.started: dict[int, float] = {}
        # Per node: (seconds the timed cells took, seconds the plan estimated for them).
        self.timed: dict[str, tuple[float, float]] = {}

    def start(self, cell_id: int) -> None:
        self.started[cell_id] = self.clock()

    def finish(self, cell_id: int) -> None:
        """A cell is no longer ahead of the sweep; if it was started here, its time calibrates
        the ETA (failed and lost cells count too: they took that time)."""
        if cell_id in self.finished:
            return
        self.finished.add(cell_id)
        began = self.started.pop(cell_id, None)
        if began is None or cell_id not in self.estimate:
            return
        node, estimate = self.estimate[cell_id]
        took, planned = self.timed.get(node, (0.0, 0.0))
        self.timed[node] = (took + self.clock() - began, planned + estimate)

    def _scale(self, node: str) -> float:
        took, planned = self.timed.get(node, (0.0, 0.0))
        if planned <= 0:
            took = sum(t for t, _ in self.timed.values())
            planned = sum(p for _, p in self.timed.values())
        return took / planned if planned > 0 else 1.0

    def eta_s(self) -> float:
        left: dict[str, float] = {}
        for cell_id, (node, seconds) in self.estimate.items():
            if cell_id not in self.finished:
                left[node] = left.get(node, 0.0) + seconds
        return max((seconds * self._scale(node) for node, seconds in left.items()), default=0.0)

    def text(self) -> str:
        done = len(self.finished & self.estimate.keys())
        return f"cells {done}/{len(self.estimate)}, ETA ~{format_duration(self.eta_s())}"
