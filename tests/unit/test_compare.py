"""SoC side by side, run vs run and Core ML vs MLX over stores built sample by sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from compare_fixture import build, facts, lognormal_runs

from fleet_tui.analysis.compare import CompareError, run_vs_run_table, soc_table
from fleet_tui.analysis.evidence import load_run
from fleet_tui.analysis.tables import ComparisonTable
from fleet_tui.config.inventory import Node
from fleet_tui.store import Store
from node_agent.stats import nearest_rank

NODES = (
    Node(name="a", host="127.0.0.2", tier="M2", hourly_usd=0.5, purchase_usd=1000.0),
    Node(name="b", host="127.0.0.3", tier="M2", hourly_usd=0.5, purchase_usd=1000.0),
    Node(name="c", host="127.0.0.4", tier="M4 Pro", hourly_usd=1.0, purchase_usd=2000.0),
)
FACTS = {"a": facts("a"), "b": facts("b"), "c": facts("c", chip="Apple M4 Pro")}


def _speeds(**factor: float) -> Any:
    rng = np.random.default_rng(7)

    def samples(node: str, key: str) -> list[list[float]]:
        base = 2.0 if "/b1/" in key else 5.0
        return lognormal_runs(rng, base * factor.get(node, 1.0))

    return samples


def _table(store: Store, run_id: int, **kwargs: Any) -> ComparisonTable:
    return soc_table([load_run(store, run_id)], **kwargs)


def test_soc_table_columns_rows_and_verdicts(tmp_path: Path) -> None:
    store, run = build(tmp_path / "s.db", NODES, _speeds(c=0.8), node_facts=FACTS)
    with store:
        table = _table(store, run, baseline="a")
    assert table.kind == "soc" and table.baseline == "a" and table.metric == "p95"
    # Columns grouped by chip: the two M2s, then the M4 Pro.
    assert [(c.key, c.group, c.is_baseline) for c in table.columns] == [
        ("a", "Apple M2", True),
        ("b", "Apple M2", False),
        ("c", "Apple M4 Pro", False),
    ]
    assert [r.key for r in table.rows] == ["mlp/b1/numpy:fp64", "mlp/b8/numpy:fp64"]
    assert table.rows[0].budget_ms == 10.0
    for row in table.rows:
        base = table.cell(row.key, "a")
        assert base is not None and base.ratio is None and base.runs == 5 and base.n == 1500
        assert base.p95_ms is not None and base.p95_ms.method == "run_level_t"
        assert base.p95_ms.low is not None and base.p95_ms.low < base.p95_ms.value < (base.p95_ms.high or 0)
        same, faster = table.cell(row.key, "b"), table.cell(row.key, "c")
        assert same is not None and same.ratio is not None
        assert same.ratio.verdict == "no_significant_difference", same.ratio
        assert (same.ratio.low or 2) <= 1.0 <= (same.ratio.high or 0)
        assert faster is not None and faster.ratio is not None
        assert faster.ratio.verdict == "faster", faster.ratio
        assert (faster.ratio.high or 2) < 1.0 and faster.ratio.estimate == pytest.approx(0.8, rel=0.03)
        assert "faster" in faster.ratio.text
        assert faster.ratio.robust_verdict == "faster" and not faster.ratio.methods_disagree


def test_per_run_statistics_come_from_the_raw_samples(tmp_path: Path) -> None:
    store, run = build(tmp_path / "s.db", NODES[:1], _speeds(), node_facts=FACTS)
    with store:
        evidence = load_run(store, run)
        cell = evidence.cells[0]
        for r, run_idx in enumerate(cell.measure.run_idx):
            values = sorted(store.samples(cell.cell.id, "measure", run_idx))
            assert cell.measure.p50[r] == nearest_rank(values, 0.5)
            assert cell.measure.p95[r] == nearest_rank(values, 0.95)
        table = _table(store, run)
    row = table.rows[0].key
    cell_view = table.cell(row, "a")
    assert cell_view is not None
    assert cell_view.per_run_p95_ms == pytest.approx([v / 1e6 for v in cell.measure.p95])


def test_baseline_by_chip_and_unknown_baseline(tmp_path: Path) -> None:
    store, run = build(tmp_path / "s.db", NODES, _speeds(), node_facts=FACTS)
    with store:
        assert _table(store, run, baseline="Apple M4 Pro").baseline == "c"
        assert _table(store, run, baseline="m4 pro").baseline == "c"
        with pytest.raises(CompareError, match="neither a node nor a chip"):
            _table(store, run, baseline="nope")


def test_need_more_runs_is_shown_but_the_comparison_judges_resolvability_itself(tmp_path: Path) -> None:
    def extra(node: str, key: str) -> dict[str, Any]:
        return {"flags": ["need_more_runs"]} if node == "c" and "/b1/" in key else {}

    store, run = build(tmp_path / "s.db", NODES, _speeds(c=0.5), node_facts=FACTS, extra=extra)
    with store:
        table = _table(store, run, baseline="a")
    flagged = table.cell("mlp/b1/numpy:fp64", "c")
    assert flagged is not None and flagged.ratio is not None
    # A halving is far beyond what five runs resolve: the agent's flag does not hide it.
    assert flagged.ratio.verdict == "faster" and flagged.floors_met
    assert "need_more_runs" in flagged.flags and "below_floors" not in flagged.flags
    assert flagged.ratio.estimate == pytest.approx(0.5, rel=0.05)


def test_too_few_runs_for_the_minimum_effect_says_how_many_it_needs(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)

    def samples(node: str, key: str) -> list[list[float]]:  # 5% between-run spread, R = 3
        return lognormal_runs(rng, 2.0, runs=3, sb=0.05)

    store, run = build(tmp_path / "s.db", NODES[:2], samples, node_facts=FACTS)
    with store:
        table = _table(store, run, baseline="a")
    cell = table.cell("mlp/b1/numpy:fp64", "b")
    assert cell is not None and cell.ratio is not None
    assert cell.ratio.verdict == "no_significant_difference"
    assert cell.ratio.runs_needed is not None and cell.ratio.runs_needed > 3
    assert f"need {cell.ratio.runs_needed} runs to resolve 2%" in cell.ratio.text


def test_few_samples_block_p95_but_not_p50(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)

    def samples(node: str, key: str) -> list[list[float]]:  # 5 x 20 = 100 samples < 130 (p95 floor)
        return lognormal_runs(rng, 2.0 * (0.7 if node == "b" else 1.0), n=20, sigma=0.003)

    store, run = build(tmp_path / "s.db", NODES[:2], samples, node_facts=FACTS)
    with store:
        p95 = _table(store, run, baseline="a", metric="p95")
        p50 = _table(store, run, baseline="a", metric="p50")
    cell95 = p95.cell("mlp/b1/numpy:fp64", "b")
    cell50 = p50.cell("mlp/b1/numpy:fp64", "b")
    assert cell95 is not None and cell95.ratio is not None and cell95.ratio.verdict == "insufficient"
    assert "few_samples_p95" in (cell95.ratio.reason or "")
    assert cell50 is not None and cell50.ratio is not None and cell50.ratio.verdict == "faster"


def test_a_speed_up_whose_numeric_gate_failed_is_marked(tmp_path: Path) -> None:
    def extra(node: str, key: str) -> dict[str, Any]:
        return (
            {"numeric": {"ok": False, "max_rel": 0.3, "tolerance": {"max_rel": 0.01}}} if node == "b" else {}
        )

    store, run = build(tmp_path / "s.db", NODES[:2], _speeds(b=0.7), node_facts=FACTS, extra=extra)
    with store:
        cell = _table(store, run, baseline="a").cell("mlp/b1/numpy:fp64", "b")
    assert cell is not None and cell.ratio is not None
    assert cell.ratio.verdict == "faster" and cell.ratio.numeric_gate_failed
    assert "but the numeric gate failed" in cell.ratio.text
    assert "numeric_gate_failed" in cell.flags
    assert cell.numeric is not None and cell.numeric.ok is False


def test_comparability_key_and_condition_warnings(tmp_path: Path) -> None:
    node_facts = {
        "a": facts("a"),
        "b": facts("b", libs={"numpy": "1.26.4"}),
        "c": facts("c", chip="Apple M4 Pro", os_build="24E1", power_source="battery"),
    }
    store, run = build(tmp_path / "s.db", NODES, _speeds(), node_facts=node_facts)
    with store:
        table = _table(store, run, baseline="a")
    other_numpy = table.cell("mlp/b1/numpy:fp64", "b")
    assert other_numpy is not None and other_numpy.ratio is not None
    assert other_numpy.ratio.verdict == "insufficient" and not other_numpy.comparable
    assert "not comparable: lib.numpy 1.26.4 vs 2.1.0" in (other_numpy.ratio.reason or "")
    assert any("not comparable" in w for w in table.warnings)
    # A different macOS build does not change the key: compared, with a warning.
    c = table.cell("mlp/b1/numpy:fp64", "c")
    assert c is not None and c.comparable and c.ratio is not None and c.ratio.estimate is not None
    assert any("macOS build 24E1 vs 24D60" in w for w in c.warnings)


def test_tier_mismatch_is_flagged(tmp_path: Path) -> None:
    node_facts = {"a": facts("a"), "b": facts("b", chip="Apple M1")}
    store, run = build(tmp_path / "s.db", NODES[:2], _speeds(), node_facts=node_facts)
    with store:
        table = _table(store, run)
    b = next(c for c in table.columns if c.key == "b")
    assert b.tier == "M2" and b.chip == "Apple M1" and b.tier_mismatch
    assert any("inventory tier 'M2'" in w for w in table.warnings)
    assert not next(c for c in table.columns if c.key == "a").tier_mismatch


def test_a_run_with_nothing_measured_is_an_error(tmp_path: Path) -> None:
    store, run = build(tmp_path / "s.db", NODES[:2], lambda node, key: None, node_facts=FACTS)
    with store, pytest.raises(CompareError, match="no measured cells"):
        _table(store, run)


def test_run_vs_run_lists_regressions_first_and_what_changed(tmp_path: Path) -> None:
    store, first = build(tmp_path / "s.db", NODES[:2], _speeds(), node_facts=FACTS)
    rng = np.random.default_rng(11)

    def later(node: str, key: str) -> list[list[float]]:
        base = 2.0 if "/b1/" in key else 5.0
        factor = {("a", "b1"): 1.3, ("b", "b8"): 0.75}.get((node, key.split("/")[1]), 1.0)
        return lognormal_runs(rng, base * factor)

    later_facts = {"a": facts("a", os_build="24E2"), "b": facts("b")}
    build(tmp_path / "s.db", NODES[:2], later, node_facts=later_facts, store=store)
    build(tmp_path / "s.db", NODES[:2], later, node_facts=later_facts, artifact="c" * 16, store=store)
    with store:
        table = run_vs_run_table(load_run(store, first), load_run(store, first + 1))
        rebuilt = run_vs_run_table(load_run(store, first), load_run(store, first + 2))
    assert table.kind == "run_vs_run" and [c.key for c in table.columns] == ["run:1", "run:2"]
    verdicts = [(row.key, table.cell(row.key, "run:2").ratio.verdict) for row in table.rows]  # type: ignore[union-attr]
    assert verdicts[0] == ("a:mlp/b1/numpy:fp64", "slower")
    assert verdicts[1] == ("b:mlp/b8/numpy:fp64", "faster")
    assert {v for _, v in verdicts[2:]} == {"no_significant_difference"}
    assert [c.row for c in table.regressions] == ["a:mlp/b1/numpy:fp64"]
    changes = {c.what: (c.before, c.after) for c in table.changes}
    assert changes["macOS build on a"] == ("24D60", "24E2")
    assert "macOS build on b" not in changes and "artifact mlp" not in changes
    # A rebuilt artifact changes the comparability key: shown at the top, nothing judged.
    assert {c.what: (c.before, c.after) for c in rebuilt.changes}["artifact mlp"] == ("a" * 16, "c" * 16)
    assert all(c.ratio.verdict == "insufficient" for c in rebuilt.cells if c.ratio is not None)
    assert not rebuilt.regressions


def test_core_ml_against_mlx_on_the_same_node(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    engines = (
        'mlx = [{ device = "gpu", dtype = "fp16" }]\ncoreml = [{ compute_units = "all", precision = "fp16" }]'
    )

    def samples(node: str, key: str) -> list[list[float]]:
        return lognormal_runs(rng, 3.0 if "coreml" in key else 2.0)

    plan = {
        "status": "ok",
        "n_ops": 10,
        "op_count": {"ane": 6, "cpu": 4},
        "cost_share": {"ane": 0.6, "cpu": 0.4},
        "n_fallback": 4,
    }

    def extra(node: str, key: str) -> dict[str, Any]:
        return {"compute_plan": plan} if "coreml" in key else {}

    store, run = build(tmp_path / "s.db", NODES[:1], samples, node_facts=FACTS, engines=engines, extra=extra)
    with store:
        table = _table(store, run)
    assert len(table.related) == 1
    versus = table.related[0]
    assert versus.kind == "coreml_vs_mlx"
    cell = versus.cell("mlp/b1/coreml:all:fp16", "a")
    assert cell is not None and cell.ratio is not None
    assert cell.ratio.reference == "mlx:gpu:fp16" and cell.ratio.verdict == "slower"
    assert cell.ratio.estimate == pytest.approx(1.5, rel=0.03)
    assert "gate 1.25x FAILED" in cell.ratio.text
    assert "40% of the cost fell back to CPU (4 ops)" in cell.ratio.text
    assert [(s.device, s.cost_share, s.op_count) for s in cell.compute_share] == [
        ("ane", 0.6, 6),
        ("cpu", 0.4, 4),
    ]
    assert cell.compute_ops == 10


# --- energy -----------------------------------------------------------------------------------------


def _energy(values: list[float], watts: float, reader: str = "macmon") -> dict[str, Any]:
    """A cell's summary energy as the agent publishes it (node_agent.energy.meter.cell_energy)."""
    return {
        "status": "ok",
        "reader": {"name": reader, "version": "0.6.1", "interval_ms": 100},
        "window": "measure",
        "n_runs": len(values),
        "j_per_inference": {"soc": {"estimate": float(np.mean(values)), "values": values}},
        "gross_j_per_inference": {"soc": float(np.mean(values)) + 0.01, "system": 0.036},
        "avg_watts": {"soc": watts, "system": watts + 10},
        "idle_watts": {"soc": 0.6, "system": 10.0},
        "flags": [],
    }


def test_energy_metric_compares_joules_per_inference_with_verdicts(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)

    def extra(node: str, key: str) -> dict[str, Any]:
        level = {"a": 0.30, "b": 0.30, "c": 0.10}[node]  # c: a third of the energy
        values = [level * float(np.exp(rng.normal(0, 0.01))) for _ in range(5)]
        return {"energy": _energy(values, watts=8.0), "power_reader": "macmon"}

    store, run = build(tmp_path / "s.db", NODES, _speeds(c=1.1), node_facts=FACTS, extra=extra)
    with store:
        table = _table(store, run, baseline="a", metric="energy")
    assert table.metric == "energy"
    c = table.cell("mlp/b1/numpy:fp64", "c")
    assert c is not None and c.ratio is not None and c.energy is not None
    assert c.ratio.verdict == "faster" and c.ratio.estimate == pytest.approx(1 / 3, rel=0.03)
    assert "less energy" in c.ratio.text
    assert c.energy.j_per_inference is not None and c.energy.j_per_inference.unit == "J"
    assert c.energy.j_per_inference.low is not None and c.energy.j_per_inference.method == "run_level_t"
    assert c.energy.watts_soc == 8.0 and c.energy.reader == "macmon"
    assert c.energy.perf_per_watt == pytest.approx((c.throughput_per_s or 0) / 8.0)
    b = table.cell("mlp/b1/numpy:fp64", "b")
    assert b is not None and b.ratio is not None and b.ratio.verdict == "no_significant_difference"


def test_cells_with_and_without_a_power_reader_are_not_comparable(tmp_path: Path) -> None:
    def extra(node: str, key: str) -> dict[str, Any]:
        return {"energy": _energy([0.3] * 5, 8.0), "power_reader": "macmon"} if node == "b" else {}

    store, run = build(tmp_path / "s.db", NODES[:2], _speeds(), node_facts=FACTS, extra=extra)
    with store:
        latency = _table(store, run, baseline="a").cell("mlp/b1/numpy:fp64", "b")
        energy = _table(store, run, baseline="a", metric="energy").cell("mlp/b1/numpy:fp64", "b")
    assert latency is not None and latency.ratio is not None and not latency.comparable
    assert "power_reader macmon vs none" in (latency.ratio.reason or "")
    assert energy is not None and energy.ratio is not None and energy.ratio.verdict == "insufficient"


def test_an_unpublished_energy_is_insufficient_not_zero(tmp_path: Path) -> None:
    def extra(node: str, key: str) -> dict[str, Any]:
        if node == "b":
            return {"energy": {"status": "energy_too_short", "reader": None}, "power_reader": "macmon"}
        return {"energy": _energy([0.3] * 5, 8.0), "power_reader": "macmon"}

    store, run = build(tmp_path / "s.db", NODES[:2], _speeds(), node_facts=FACTS, extra=extra)
    with store:
        cell = _table(store, run, baseline="a", metric="energy").cell("mlp/b1/numpy:fp64", "b")
    assert cell is not None and cell.ratio is not None and cell.ratio.verdict == "insufficient"
    assert "energy_too_short" in (cell.ratio.reason or "")
    assert cell.energy is not None and cell.energy.j_per_inference is None
