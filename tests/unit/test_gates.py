"""Gates over crafted cell summaries: each gate passes, fails and skips for the right reason."""

from __future__ import annotations

from typing import Any

import pytest

from fleet_tui.analysis.gates import (
    coreml_regression,
    evaluate_gates,
    numeric_drift,
    over_budget,
    thermal_drift,
)
from fleet_tui.config.spec import GateSpec
from fleet_tui.model.gates import CellOutcome

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
