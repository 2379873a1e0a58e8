"""Cost and capex with hand-computed expectations.

Most runs here hold one latency repeated (a constant per run), so every figure has a closed
form: the mean latency is that constant, the run-level interval collapses onto it, and
cost per million = hourly x ms / 3.6, payback = purchase / (hourly x 730 x utilisation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from compare_fixture import build, facts
from scipy import stats as sps

from fleet_tui.analysis.capex import capex_table, cost_per_million_usd, payback_months
from fleet_tui.analysis.compare import CompareError, soc_table
from fleet_tui.analysis.evidence import load_run
from fleet_tui.analysis.tables import ComparisonTable
from fleet_tui.config.inventory import Node

CHEAP = Node(name="cheap", host="127.0.0.2", tier="M1", hourly_usd=0.5, purchase_usd=700.0)
FAST = Node(name="fast", host="127.0.0.3", tier="M4", hourly_usd=1.2, purchase_usd=1800.0)
MID = Node(name="mid", host="127.0.0.4", tier="M2", hourly_usd=0.8, purchase_usd=1000.0)
FACTS = {
    "cheap": facts("cheap", chip="Apple M1"),
    "fast": facts("fast", chip="Apple M4"),
    "mid": facts("mid"),
}
N = 200


def _constant(per_run_ms: Sequence[float]) -> list[list[float]]:
    return [[ms] * N for ms in per_run_ms]


LATENCY = {
    ("cheap", "b1"): [12.0] * 5,
    ("cheap", "b8"): [24.0] * 5,
    ("fast", "b1"): [8.0] * 5,
    ("fast", "b8"): [16.0] * 5,
    ("mid", "b1"): [9.0, 9.5, 10.5, 9.2, 9.8],
    ("mid", "b8"): [15.0] * 5,
}


def _samples(node: str, key: str) -> list[list[float]]:
    return _constant(LATENCY[(node, key.split("/")[1])])


def _capex(
    tmp_path: Path,
    nodes: Sequence[Node],
    budgets: tuple[float, float] = (10.0, 20.0),
    utilisation: float = 0.5,
    **kw: object,
) -> ComparisonTable:
    store, run = build(tmp_path / "s.db", nodes, _samples, node_facts=FACTS, budgets=budgets, **kw)  # type: ignore[arg-type]
    with store:
        return capex_table([load_run(store, run)], utilisation=utilisation)


def test_formulas_by_hand() -> None:
    # 10 ms each: 360,000 inferences an hour; at $1/h a million cost $2.78.
    assert cost_per_million_usd(1.0, 10.0) == pytest.approx(1e6 / 360_000)
    assert cost_per_million_usd(0.5, 12.0) == pytest.approx(5 / 3)
    # $2000 against $0.50/h used half the time: 2000 / (0.5 x 730 x 0.5) = 10.96 months.
    assert payback_months(2000.0, 0.5, 0.5) == pytest.approx(10.958904, rel=1e-6)
    assert payback_months(1000.0, 0.0, 1.0) is None


def test_cost_per_million_payback_and_the_cheapest_tier(tmp_path: Path) -> None:
    table = _capex(tmp_path, (CHEAP, FAST), budgets=(10.0, 18.0))
    assert table.kind == "capex" and table.utilisation == 0.5
    cost = {(c.column, c.row.split("/")[1]): c.cost for c in table.cells}
    fast_b1 = cost[("fast", "b1")]
    assert (
        fast_b1 is not None
        and fast_b1.cost_per_million_usd is not None
        and fast_b1.throughput_per_s is not None
    )
    assert fast_b1.cost_per_million_usd.value == pytest.approx(1.2 * 8 / 3.6)  # $2.67
    assert fast_b1.cost_per_million_usd.low == pytest.approx(1.2 * 8 / 3.6)  # constant runs: no spread
    assert fast_b1.throughput_per_s.value == pytest.approx(125.0)
    assert fast_b1.payback_months == pytest.approx(1800 / (1.2 * 730 * 0.5))  # 4.11 months
    assert fast_b1.p95_upper_ms == pytest.approx(8.0) and fast_b1.meets_budget is True
    cheap_b1 = cost[("cheap", "b1")]
    assert cheap_b1 is not None and cheap_b1.cost_per_million_usd is not None
    assert cheap_b1.cost_per_million_usd.value == pytest.approx(5 / 3)
    assert cheap_b1.payback_months == pytest.approx(700 / (0.5 * 730 * 0.5))
    assert cheap_b1.meets_budget is False  # 12 ms > 10 ms
    (rec,) = table.recommendations
    assert (
        rec.workload == "mlp"
        and rec.tier == "M4"
        and rec.nodes == ("fast",)
        and rec.engine_key == "numpy:fp64"
    )
    # Mean over the buckets of the cost per million: (2.667 + 5.333) / 2 = $4.00.
    assert rec.cost_per_million_usd == pytest.approx((1.2 * 8 / 3.6 + 1.2 * 16 / 3.6) / 2)
    assert "M4 with numpy:fp64 meets every bucket's budget" in rec.text and "$4 per million" in rec.text
    assert "5 run(s) each" in rec.evidence and f"{4 * 5 * N // 2} samples" in rec.evidence
    assert "bucket b8 is the tightest: upper bound 16 ms, 11% under budget" in rec.would_change


def test_no_tier_meets_the_budget(tmp_path: Path) -> None:
    table = _capex(tmp_path, (CHEAP, FAST), budgets=(5.0, 20.0))
    (rec,) = table.recommendations
    assert rec.tier is None
    assert rec.text == (
        "no tier meets the budget for bucket b1 (best: M4 with numpy:fp64, p95 upper bound 8 ms > 5 ms)"
    )


def test_a_tier_excluded_only_by_its_upper_bound(tmp_path: Path) -> None:
    table = _capex(tmp_path, (CHEAP, FAST, MID))
    logs = [math.log(v) for v in LATENCY[("mid", "b1")]]
    mean, sd = sum(logs) / 5, math.sqrt(sum((x - sum(logs) / 5) ** 2 for x in logs) / 4)
    point, upper = math.exp(mean), math.exp(mean + sps.t.ppf(0.975, 4) * sd / math.sqrt(5))
    assert point < 10.0 < upper  # 9.59 ms within the budget, its upper bound 10.3 ms is not
    mid_b1 = next(c for c in table.cells if c.column == "mid" and "/b1/" in c.row)
    assert mid_b1.cost is not None and mid_b1.cost.meets_budget is False
    assert mid_b1.cost.p95_upper_ms == pytest.approx(upper)
    (rec,) = table.recommendations
    # M2 would be cheaper ($2.13 per million on b1) but is excluded: M4 is recommended.
    assert rec.tier == "M4"
    assert "M2 with numpy:fp64 is excluded only by the upper bound on bucket b1" in rec.would_change
    assert f"upper bound {upper:.3g} ms" in rec.would_change


def test_the_sustained_phase_decides_when_it_ran(tmp_path: Path) -> None:
    def sustained(node: str, key: str) -> list[list[float]] | None:
        return _constant([11.0] * 5) if node == "fast" and "/b1/" in key else None

    table = _capex(tmp_path, (CHEAP, FAST), sustained=sustained)
    (rec,) = table.recommendations
    assert rec.tier is None
    assert "bucket b1" in rec.text and "11 ms > 10 ms" in rec.text
    fast_b1 = next(c for c in table.cells if c.column == "fast" and "/b1/" in c.row)
    assert fast_b1.cost is not None and fast_b1.cost.throughput_per_s is not None
    assert fast_b1.cost.throughput_per_s.value == pytest.approx(1000 / 11)
    assert "no_sustained_phase" not in fast_b1.flags


def test_a_tier_is_judged_on_its_slowest_node(tmp_path: Path) -> None:
    slow_twin = Node(name="fast2", host="127.0.0.5", tier="M4", hourly_usd=1.2, purchase_usd=1800.0)
    LATENCY[("fast2", "b1")] = [10.5] * 5
    LATENCY[("fast2", "b8")] = [16.0] * 5
    FACTS["fast2"] = facts("fast2", chip="Apple M4")
    try:
        table = _capex(tmp_path, (CHEAP, FAST, slow_twin))
    finally:
        del LATENCY[("fast2", "b1")], LATENCY[("fast2", "b8")], FACTS["fast2"]
    (rec,) = table.recommendations
    assert rec.tier is None and "best: M4 with numpy:fp64, p95 upper bound 10.5 ms > 10 ms" in rec.text


def test_cost_metric_ratio_carries_the_price(tmp_path: Path) -> None:
    store, run = build(tmp_path / "s.db", (CHEAP, FAST), _samples, node_facts=FACTS)
    from fleet_tui.analysis.capex import price_scale

    with store:
        table = soc_table([load_run(store, run)], baseline="cheap", metric="cost", price_scale=price_scale)
    fast_b1 = next(c for c in table.cells if c.column == "fast" and "/b1/" in c.row)
    assert fast_b1.ratio is not None
    assert fast_b1.ratio.estimate == pytest.approx((1.2 * 8) / (0.5 * 12))  # 1.6x the cost
    assert fast_b1.ratio.verdict == "slower" and "dearer" in fast_b1.ratio.text


def test_utilisation_must_be_a_fraction(tmp_path: Path) -> None:
    with pytest.raises(CompareError, match="utilisation"):
        _capex(tmp_path, (CHEAP,), utilisation=1.5)


def test_electricity_at_kwh_usd_is_added_to_cost_per_million(tmp_path: Path) -> None:
    from dataclasses import replace

    def extra(node: str, key: str) -> dict[str, object]:
        return {
            "power_reader": "macmon",
            "energy": {
                "status": "ok",
                "reader": {"name": "macmon", "version": "0.6.1", "interval_ms": 100},
                "j_per_inference": {"soc": {"estimate": 0.2, "values": [0.2] * 5}},
                "gross_j_per_inference": {"soc": 0.25, "system": 0.36},
                "avg_watts": {"soc": 8.0, "system": 30.0},
            },
        }

    priced = replace(CHEAP, kwh_usd=0.5)
    table = _capex(tmp_path, [priced], extra=extra)
    cell = table.cell("mlp/b1/numpy:fp64", "cheap")
    assert cell is not None and cell.cost is not None and cell.cost.cost_per_million_usd is not None
    electricity = 0.36 * 0.5 / 3.6  # system joules x $/kWh / 3.6 per million inferences
    assert cell.cost.electricity_per_million_usd == pytest.approx(electricity)
    assert cell.cost.kwh_usd == 0.5
    assert any("Electricity is added" in note for note in table.notes)
    rent = cost_per_million_usd(0.5, 12.0)
    assert cell.cost.cost_per_million_usd.value == pytest.approx(rent + electricity)
    # An owned node (no hourly price) costs its electricity alone.
    owned = replace(priced, hourly_usd=None, purchase_usd=None)
    table = _capex(tmp_path / "owned", [owned], extra=extra)
    cell = table.cell("mlp/b1/numpy:fp64", "cheap")
    assert cell is not None and cell.cost is not None and cell.cost.cost_per_million_usd is not None
    assert cell.cost.cost_per_million_usd.value == pytest.approx(electricity)
