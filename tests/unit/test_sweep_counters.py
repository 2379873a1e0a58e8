"""The words and counters of a sweep's live progress line (fleet_tui.sweep.counters)."""

from __future__ import annotations

from spec_fixtures import spec_toml

from fleet_tui.config.spec import parse_spec
from fleet_tui.store import CellRow
from fleet_tui.sweep.counters import SweepCounters, phase_text
from fleet_tui.sweep.plan import estimate_cell_seconds, format_duration


def test_phase_text_says_what_the_numbers_are() -> None:
    assert phase_text("warmup", 56, 60, 0, 2) == "run 1/2 warmup 56 (max 60)"
    assert phase_text("measure", 3613, 130, 1, 2) == "run 2/2 samples 3613 (floor 130)"
    assert phase_text("run", 0, 2, None, 2) == "run 1/2 starting"
    assert phase_text("sustained", 30, 120, 0, 1) == "run 1/1 sustained 30 s of 120 s"


def _cell(cell_id: int, node: str, bucket: str) -> CellRow:
    return CellRow(
        cell_id, 1, node, "mlp", bucket, "numpy", {}, f"mlp/{bucket}/numpy", "pending", 0, None, None, None
    )


def test_counters_count_cells_and_estimate_the_busiest_node() -> None:
    spec = parse_spec(
        spec_toml("c", workloads=(("mlp", (("b1", 2.0), ("b8", 40.0))),), sections={"measure": "runs = 1"})
    )
    cells = [_cell(1, "a", "b1"), _cell(2, "a", "b8"), _cell(3, "b", "b1")]
    counters = SweepCounters(cells, spec)
    one = estimate_cell_seconds(spec.measure, 2.0)
    both = one + estimate_cell_seconds(spec.measure, 40.0)
    assert counters.text() == f"cells 0/3, ETA ~{format_duration(both)}"
    counters.finish(2)
    counters.finish(2)  # a cell finishes once however often it is reported
    assert counters.text() == f"cells 1/3, ETA ~{format_duration(one)}"
    counters.finish(1)
    counters.finish(3)
    assert counters.text() == "cells 3/3, ETA ~0s"


def test_the_eta_learns_from_the_cells_that_finished() -> None:
    """Budgets are ceilings: once cells finish faster than planned, the rest is scaled by each
    node's own ratio (a node with no finished cell yet takes the sweep's ratio)."""
    spec = parse_spec(spec_toml("c", workloads=(("mlp", (("b1", 2.0), ("b8", 2.0))),)))
    now = [0.0]
    cells = [_cell(1, "a", "b1"), _cell(2, "a", "b8"), _cell(3, "b", "b1"), _cell(4, "b", "b8")]
    counters = SweepCounters(cells, spec, clock=lambda: now[0])
    planned = estimate_cell_seconds(spec.measure, 2.0)
    assert counters.eta_s() == 2 * planned
    counters.start(1)
    now[0] += planned / 4  # node a's first cell took a quarter of its estimate
    counters.finish(1)
    # a: one cell left at a quarter; b: two cells left at the sweep's ratio (a quarter too).
    assert counters.eta_s() == 2 * planned / 4
    counters.start(3)
    now[0] += planned  # node b's first cell took its estimate
    counters.finish(3)
    assert counters.eta_s() == planned  # b's last cell at its own ratio, 1
    counters.finish(4)  # finished without a start here (resumed elsewhere): no timing
    assert counters.eta_s() == planned / 4
