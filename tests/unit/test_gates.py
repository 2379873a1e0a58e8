"""Gates over crafted cell summaries: each gate passes, fails and skips for the right reason."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from fleet_tui.analysis.gates import (
    GateReport,
    coreml_regression,
    evaluate_gates,
    gate_exit_code,
    numeric_drift,
    over_budget,
    thermal_drift,
)
from fleet_tui.config.spec import GateSpec
from fleet_tui.model.gates import VERDICTS, CellOutcome
from node_agent import stats

MS = 1_000_000  # summaries are in ns
_ids = iter(range(1, 10_000))


def cell(
    engine: str,
    config: dict[str, str],
    summary: dict[str, Any] | None = None,
    *,
    state: str = "done",
    node: str = "m4",
    bucket: str = "b1",
    reason: str | None = None,
) -> CellOutcome:
    key = "mlp/" + bucket + "/" + ":".join([engine, *config.values()])
    return CellOutcome(next(_ids), node, "mlp", bucket, engine, config, key, state, reason, summary)


def mlx(device: str, dtype: str, p95_ms: float, **kw: Any) -> CellOutcome:
    return cell("mlx", {"device": device, "dtype": dtype}, {"p95": p95_ms * MS, "p50": p95_ms * MS}, **kw)


def coreml(units: str, precision: str, p95_ms: float | None, **kw: Any) -> CellOutcome:
    summary = None if p95_ms is None else {"p95": p95_ms * MS}
    return cell("coreml", {"compute_units": units, "precision": precision}, summary, **kw)


# --- coreml_regression ----------------------------------------------------------------------------


def test_coreml_within_threshold_of_mlx_passes_and_above_fails() -> None:
    ok = coreml("all", "fp16", 1.2)
    slow = coreml("cpu_and_ne", "fp16", 1.3)
    reference = mlx("gpu", "fp16", 1.0)
    verdicts = {v.cell_key: v for v in coreml_regression([reference, ok, slow], threshold=1.25)}
    assert verdicts[ok.key].verdict == "pass" and verdicts[ok.key].value == pytest.approx(1.2)
    failed = verdicts[slow.key]
    assert failed.verdict == "fail" and failed.value == pytest.approx(1.3) and failed.threshold == 1.25
    assert "1.300 ms" in failed.detail and "1.30x MLX mlx:gpu:fp16 p95 1.000 ms" in failed.detail
    assert "limit 1.25x" in failed.detail and "mlp/b1 on m4" in failed.detail
    assert len(verdicts) == 2  # only Core ML cells get this gate


def test_mlx_reference_prefers_same_precision_then_gpu() -> None:
    target = coreml("all", "fp16", 2.0)
    outcomes = [
        mlx("cpu", "fp32", 0.5),  # fastest, but other precision
        mlx("cpu", "fp16", 1.0),
        mlx("gpu", "fp16", 1.9),  # same precision, GPU: the reference
        target,
    ]
    [verdict] = coreml_regression(outcomes)
    assert "mlx:gpu:fp16" in verdict.detail and verdict.verdict == "pass"
    # Without a same-precision MLX cell, any MLX cell is the reference (GPU first).
    [fallback] = coreml_regression([mlx("cpu", "fp32", 0.5), mlx("gpu", "fp32", 1.0), target])
    assert "mlx:gpu:fp32" in fallback.detail and fallback.verdict == "fail"


def test_mlx_reference_must_be_same_node_and_bucket() -> None:
    target = coreml("all", "fp16", 2.0)
    others = [mlx("gpu", "fp16", 1.0, node="m2"), mlx("gpu", "fp16", 1.0, bucket="b8")]
    [verdict] = coreml_regression([*others, target])
    assert verdict.verdict == "skipped" and "no measured MLX cell" in verdict.detail


def test_coreml_regression_skips_unmeasured_cells_with_reason() -> None:
    outcomes = [
        mlx("gpu", "fp16", 1.0),
        coreml("all", "fp16", None, state="unsupported", reason="Core ML prediction needs macOS"),
        coreml("cpu_only", "fp16", 1.0, state="failed", reason="predict raised"),
    ]
    verdicts = coreml_regression(outcomes)
    assert [v.verdict for v in verdicts] == ["skipped", "skipped"]
    assert verdicts[0].detail == "cell unsupported: Core ML prediction needs macOS"
    assert verdicts[1].detail == "cell failed: predict raised"


# --- thermal_drift --------------------------------------------------------------------------------


def _drift_cell(burst_ms: float | None, sustained_ms: float | None) -> CellOutcome:
    summary: dict[str, Any] = {"p95": MS, "burst": None, "sustained": None}
    if burst_ms is not None:
        summary["burst"] = {"n": 100, "p50": burst_ms * MS, "p95": burst_ms * MS}
    if sustained_ms is not None:
        summary["sustained"] = {"n": 100, "p50": sustained_ms * MS, "p95": sustained_ms * MS}
    return cell("mlx", {"device": "gpu", "dtype": "fp16"}, summary)


def test_thermal_drift_passes_and_fails_on_the_median_ratio() -> None:
    steady, throttled = _drift_cell(1.0, 1.15), _drift_cell(1.0, 1.5)
    ok, bad = thermal_drift([steady, throttled], threshold=1.2)
    assert ok.verdict == "pass" and ok.value == pytest.approx(1.15)
    assert bad.verdict == "fail" and bad.value == pytest.approx(1.5)
    assert "sustained p50 1.500 ms is 1.50x burst p50 1.000 ms (limit 1.2x)" in bad.detail
    assert "dedicated node" in bad.detail


def test_thermal_drift_skips_without_a_sustained_phase() -> None:
    [verdict] = thermal_drift([_drift_cell(1.0, None)])
    assert verdict.verdict == "skipped" and "sustained phase not run" in verdict.detail


# --- over_budget ----------------------------------------------------------------------------------


def test_over_budget_names_the_bucket_and_figures() -> None:
    fast, slow = mlx("gpu", "fp16", 1.9), mlx("cpu", "fp32", 2.5)
    budgets = {("mlp", "b1"): 2.0}
    ok, bad = over_budget([fast, slow], budgets)
    assert ok.verdict == "pass" and ok.value == pytest.approx(1.9) and ok.threshold == 2.0
    assert bad.verdict == "fail"
    assert bad.detail == "bucket mlp/b1 on m4, mlx:cpu:fp32: p95 2.500 ms > budget 2 ms"


def test_over_budget_skips_a_bucket_without_budget() -> None:
    [verdict] = over_budget([mlx("gpu", "fp16", 1.0, bucket="b8")], {("mlp", "b1"): 2.0})
    assert verdict.verdict == "skipped" and "no budget for bucket mlp/b8" in verdict.detail


# --- numeric_drift --------------------------------------------------------------------------------


def _numeric_cell(engine: str, numeric: dict[str, Any] | None) -> CellOutcome:
    config = {"dtype": "fp64"} if engine == "numpy" else {"device": "gpu", "dtype": "fp16"}
    return cell(engine, config, {"p95": MS, "numeric": numeric})


def test_numeric_drift_passes_and_fails_on_the_agent_check() -> None:
    tolerance = {"max_abs": 0.02, "max_rel": 0.005, "min_cosine": 0.9995}
    good = _numeric_cell(
        "mlx", {"max_abs": 0.001, "max_rel": 0.0004, "cosine": 0.99999, "tolerance": tolerance, "ok": True}
    )
    bad = _numeric_cell(
        "mlx", {"max_abs": 0.3, "max_rel": 0.08, "cosine": 0.98, "tolerance": tolerance, "ok": False}
    )
    ok, fail = numeric_drift([good, bad])
    assert ok.verdict == "pass"
    assert fail.verdict == "fail" and fail.value == pytest.approx(0.08) and fail.threshold == 0.005
    assert "max_abs 0.3, max_rel 0.08, cosine 0.98" in fail.detail and "tolerance max_abs 0.02" in fail.detail


def test_numeric_drift_skips_missing_checks_and_ignores_the_numpy_reference() -> None:
    verdicts = numeric_drift([_numeric_cell("numpy", None), _numeric_cell("mlx", None)])
    assert len(verdicts) == 1
    assert verdicts[0].verdict == "skipped" and "no numeric check recorded" in verdicts[0].detail


# --- evaluate_gates -------------------------------------------------------------------------------


def test_evaluate_gates_combines_and_respects_disabled_gates() -> None:
    outcomes = [mlx("gpu", "fp16", 1.0), coreml("all", "fp16", 3.0)]
    report = evaluate_gates(outcomes, GateSpec(), {("mlp", "b1"): 2.0})
    gates = {(v.gate, v.cell_key): v.verdict for v in report.verdicts}
    assert gates[("coreml_regression", outcomes[1].key)] == "fail"
    assert gates[("over_budget", outcomes[1].key)] == "fail"
    assert gates[("over_budget", outcomes[0].key)] == "pass"
    assert not report.passed and len(report.failures) == 2
    assert report.counts()["fail"] == 2

    relaxed = GateSpec(coreml_vs_mlx_p95=None, sustained_vs_burst=None, budget=False, numeric=False)
    empty = evaluate_gates(outcomes, relaxed, {("mlp", "b1"): 2.0})
    assert empty.verdicts == () and empty.passed


def test_a_sweep_with_only_skipped_verdicts_passes() -> None:
    outcomes = [cell("mlx", {"device": "gpu", "dtype": "fp16"}, None, state="unsupported", reason="no Metal")]
    report = evaluate_gates(outcomes, GateSpec(), {("mlp", "b1"): 2.0})
    assert report.verdicts and {v.verdict for v in report.verdicts} == {"skipped"} and report.passed


# --- inconclusive: judged on the published interval and the sample floors ------------------------


def _with_interval(
    p95_ms: float, lo_ms: float, hi_ms: float, flags: list[str] | None = None
) -> dict[str, Any]:
    return {
        "n": 3000,
        "p95": p95_ms * MS,
        "ci95": {"p95": [lo_ms * MS, hi_ms * MS]},
        "interval_method": "t_log_runs",
        "flags": flags or [],
    }


def _mlx_cell(summary: dict[str, Any]) -> CellOutcome:
    return cell("mlx", {"device": "gpu", "dtype": "fp16"}, summary)


def test_over_budget_is_judged_on_the_interval() -> None:
    budgets = {("mlp", "b1"): 2.0}
    below = _mlx_cell(_with_interval(1.8, 1.7, 1.9))
    above = _mlx_cell(_with_interval(2.3, 2.1, 2.5))
    straddles = _mlx_cell(_with_interval(1.95, 1.8, 2.1, ["need_more_runs"]))
    ok, bad, unsure = over_budget([below, above, straddles], budgets)
    assert (ok.verdict, bad.verdict, unsure.verdict) == ("pass", "fail", "inconclusive")
    assert "95% CI 1.800-2.100 ms" in unsure.detail
    assert "straddles the limit (need_more_runs)" in unsure.detail and unsure.value == pytest.approx(1.95)


def test_a_gate_on_a_cell_below_its_floor_is_inconclusive() -> None:
    # Issue: MiniLM MLX with n=13 (floor 130) was reported over_budget pass.
    rng = random.Random(1)
    summary = stats.summarize([rng.lognormvariate(math.log(5e6), 0.05) for _ in range(13)])
    assert "few_samples_p95" in summary["flags"]
    [verdict] = over_budget([_mlx_cell(summary)], {("mlp", "b1"): 1000.0})
    assert verdict.verdict == "inconclusive"
    assert "n=13" in verdict.detail and "few_samples_p95" in verdict.detail
    # The same for a stored summary from before intervals were gate-ready.
    old = {"p95": 5 * MS, "ci95": {"p95": None}, "flags": ["few_samples_p95"], "n": 13}
    [old_verdict] = over_budget([_mlx_cell(old)], {("mlp", "b1"): 1000.0})
    assert old_verdict.verdict == "inconclusive"


def test_a_cell_below_its_floor_whose_every_sample_is_over_budget_fails() -> None:
    rng = random.Random(2)
    summary = stats.summarize([rng.lognormvariate(math.log(5e6), 0.05) for _ in range(13)])
    assert "few_samples_p95" in summary["flags"]
    [over] = over_budget([_mlx_cell(summary)], {("mlp", "b1"): 1.0})  # every sample is ~5 ms
    assert over.verdict == "fail" and "every sample is over budget" in over.detail
    [unsure] = over_budget([_mlx_cell(summary)], {("mlp", "b1"): 5.0})  # the budget is within the data
    assert unsure.verdict == "inconclusive"


def test_old_summaries_keep_the_point_verdict() -> None:
    # No interval_method: the stored pooled interval is not trusted, the point figure decides.
    old = {"p95": 1.95 * MS, "ci95": {"p95": [1.8 * MS, 2.1 * MS]}, "flags": ["need_more_runs"]}
    [verdict] = over_budget([_mlx_cell(old)], {("mlp", "b1"): 2.0})
    assert verdict.verdict == "pass" and "CI" not in verdict.detail


def test_a_new_summary_without_an_interval_is_inconclusive() -> None:
    summary = {"p95": 1.0 * MS, "ci95": {"p95": None}, "interval_method": "order_statistic", "flags": []}
    [verdict] = over_budget([_mlx_cell(summary)], {("mlp", "b1"): 2.0})
    assert verdict.verdict == "inconclusive" and "no 95% interval" in verdict.detail


def _drift_summary(ratio: float | None, lo: float, hi: float, reason: str | None = None) -> dict[str, Any]:
    drift: dict[str, Any] = {
        "method": "burst_vs_final_window",
        "final_fraction": 0.2,
        "ratio": ratio,
        "ci95": None if ratio is None else [lo, hi],
        "burst": None if ratio is None else {"n": 400, "p50": MS, "p95": MS},
        "sustained": None if ratio is None else {"n": 2400, "p50": (ratio or 1) * MS, "p95": MS},
    }
    if reason:
        drift["reason"] = reason
    return {"p95": MS, "flags": [], "drift": drift, "burst": drift["burst"], "sustained": drift["sustained"]}


def test_thermal_drift_reads_the_drift_ratio_and_its_interval() -> None:
    cells = [
        _mlx_cell(_drift_summary(1.05, 1.02, 1.08)),
        _mlx_cell(_drift_summary(1.26, 1.23, 1.29)),
        _mlx_cell(_drift_summary(1.21, 1.18, 1.24)),
        _mlx_cell(_drift_summary(1.15, 1.10, 1.21)),  # below the limit, but the interval reaches it
        _mlx_cell(_drift_summary(None, 0, 0, reason="windows need >= 5 samples each (got 3, 2)")),
    ]
    verdicts = [v.verdict for v in thermal_drift(cells, threshold=1.2)]
    assert verdicts == ["pass", "fail", "inconclusive", "inconclusive", "inconclusive"]
    fail = thermal_drift([cells[1]], threshold=1.2)[0]
    assert "last 20% of the sustained phase" in fail.detail and "burst p50 (measured phase)" in fail.detail
    assert "95% CI 1.230-1.290x" in fail.detail and "dedicated node" in fail.detail
    short = thermal_drift([cells[4]], threshold=1.2)[0]
    assert "too short to judge" in short.detail and "windows need" in short.detail


def _run_level_cell(engine: str, config: dict[str, str], p95s_ms: list[float]) -> CellOutcome:
    rng = random.Random(len(p95s_ms))
    run_ids = [r for r in range(len(p95s_ms)) for _ in range(200)]
    samples = [p95s_ms[r] * MS * rng.lognormvariate(0, 0.01) / 1.0166 for r in run_ids]
    return cell(engine, config, stats.summarize(samples, run_ids=run_ids, want_p99=False))


def test_coreml_regression_uses_a_welch_interval_of_the_ratio() -> None:
    mlx_ref = _run_level_cell("mlx", {"device": "gpu", "dtype": "fp16"}, [1.0, 1.01, 0.99, 1.0, 1.005])
    clear = _run_level_cell(
        "coreml", {"compute_units": "all", "precision": "fp16"}, [1.5, 1.52, 1.49, 1.5, 1.51]
    )
    noisy = _run_level_cell(
        "coreml", {"compute_units": "cpu_and_ne", "precision": "fp16"}, [1.0, 1.6, 1.2, 1.45, 1.3]
    )
    verdicts = {v.cell_key: v for v in coreml_regression([mlx_ref, clear, noisy], threshold=1.25)}
    assert verdicts[clear.key].verdict == "fail" and "95% CI" in verdicts[clear.key].detail
    assert verdicts[noisy.key].verdict == "inconclusive"


def test_gate_exit_code_counts_inconclusive_only_when_strict() -> None:
    def report(*verdicts: str) -> GateReport:
        outcome = _mlx_cell({"p95": MS})
        base = over_budget([outcome], {("mlp", "b1"): 2.0})[0]
        return GateReport(tuple(base.__class__(**{**base.__dict__, "verdict": v}) for v in verdicts))

    assert gate_exit_code(report("pass", "skipped", "inconclusive")) == 0
    assert gate_exit_code(report("pass", "inconclusive"), strict=True) == 1
    assert gate_exit_code(report("pass", "fail")) == 1 and report("fail").exit_code(strict=False) == 1
    assert gate_exit_code(report("pass", "skipped"), strict=True) == 0
    mixed = report("pass", "inconclusive", "fail", "skipped")
    assert mixed.counts() == dict.fromkeys(VERDICTS, 1) and len(mixed.inconclusive) == 1
    assert report("inconclusive").passed  # does not fail by default, but is listed
