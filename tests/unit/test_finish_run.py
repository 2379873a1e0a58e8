"""The run's exit from its gates: an inconclusive gate is shown, and fails the run only with --strict."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_fixtures import linux_facts, spec_toml

from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import parse_spec
from fleet_tui.store import Store
from fleet_tui.sweep.plan import build_plan
from fleet_tui.sweep.scheduler import finish_run

SPEC = spec_toml("strict-test")
LINUX = linux_facts("numpy")


@pytest.mark.parametrize(("strict", "expected"), [(False, 0), (True, 1)])
def test_a_gate_on_a_cell_below_its_floor_is_inconclusive(
    tmp_path: Path, strict: bool, expected: int
) -> None:
    spec = parse_spec(SPEC)
    with Store.open(tmp_path / "fleet.db") as store:
        run_id = store.create_run(spec)
        (cell_id,) = store.add_cells(run_id, build_plan(spec, [Node(name="n", host="h")], {"n": LINUX}).cells)
        # 13 samples, far below the p95 floor: well within budget, yet nothing can be concluded.
        store.add_result(cell_id, {"p95": 1.0e6, "n": 13, "flags": ["few_samples_p95"]})
        status, code, report = finish_run(store, run_id, spec, interrupted=False, strict=strict)
        verdicts = {v.gate: v.verdict for v in report.verdicts}
        assert verdicts["over_budget"] == "inconclusive"
        assert status == "complete" and code == expected
        assert store.run(run_id).exit_code == expected
        stored = {v.gate: v.verdict for v in store.gate_verdicts(run_id)}
        assert stored["over_budget"] == "inconclusive"


def test_the_sweep_ends_with_a_results_table_with_flags_and_why_gates_were_skipped(tmp_path: Path) -> None:
    import io

    from fleet_tui.cli.sweep import print_results_table

    spec = parse_spec(SPEC)
    with Store.open(tmp_path / "fleet.db") as store:
        run_id = store.create_run(spec)
        (cell_id,) = store.add_cells(run_id, build_plan(spec, [Node(name="n", host="h")], {"n": LINUX}).cells)
        summary = {"p50": 0.9e6, "p95": 1.0e6, "ci95": {"p95": [0.95e6, 1.1e6]}, "n": 13}
        store.add_result(cell_id, {**summary, "flags": ["few_samples_p95"]})
        _, _, report = finish_run(store, run_id, spec, interrupted=False)
        out = io.StringIO()
        print_results_table(store, run_id, report, out)
    text = out.getvalue()
    row = next(line for line in text.splitlines() if line.startswith("n "))
    assert "0.900 ms" in row and "1.000 ms (0.950-1.100)" in row and " 13 " in row
    assert "few_samples_p95" in row and "over_budget inconclusive" in row
    assert "thermal_drift skipped on 1 cell(s): " in text
