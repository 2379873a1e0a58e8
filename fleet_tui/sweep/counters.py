"""What a running sweep tells its operator about where it is: per cell, the phase's counter in
words that match the spec (warmup n (max N), samples n (floor N)); per sweep, cells done/total and
an ETA.

The ETA is the plan's estimate (every inference at its bucket's budget, see `plan`) of the cells
not finished yet, on the busiest node (nodes run in parallel); it is a guide, not a measurement.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    if phase == "wait_nominal":
        return f"{run_text}waiting for nominal thermal pressure {done} s (max {total} s)"
    return f"{run_text}{phase} {done}/{total}"


class SweepCounters:
    """Cells done out of the cells this invocation runs, and the ETA of the rest."""

    def __init__(self, cells: Iterable[CellRow], spec: SweepSpec) -> None:
        budgets = {(w.name, b.name): b.budget_ms for w in spec.workloads for b in w.buckets}
        self.estimate: dict[int, tuple[str, float]] = {
            cell.id: (
                cell.node,
                estimate_cell_seconds(spec.measure, budgets.get((cell.workload, cell.bucket), 0.0)),
            )
            for cell in cells
        }
        self.finished: set[int] = set()

    def finish(self, cell_id: int) -> None:
        self.finished.add(cell_id)

    def eta_s(self) -> float:
        left: dict[str, float] = {}
        for cell_id, (node, seconds) in self.estimate.items():
            if cell_id not in self.finished:
                left[node] = left.get(node, 0.0) + seconds
        return max(left.values(), default=0.0)

    def text(self) -> str:
        done = len(self.finished & self.estimate.keys())
        return f"cells {done}/{len(self.estimate)}, ETA ~{format_duration(self.eta_s())}"
