"""The runbook's gates (DESIGN "The runbook"), as pure functions over stored cell results.

Each gate returns one `GateVerdict` per cell it applies to: "pass", "fail" (with the figures in
`detail`) or "skipped" (with the reason: the cell did not run, or an input is missing). The
sweep passes when no verdict fails; skipped verdicts never fail a sweep, but they are reported.

Latency figures in summaries are nanoseconds (node_agent.stats); details print milliseconds.

- coreml_regression: a Core ML cell's p95 above `threshold` x the MLX reference p95 of the same
  bucket on the same node. The MLX reference is chosen among that bucket's measured MLX cells:
  same precision first (coreml fp16 <-> mlx fp16), then the GPU before the CPU, then the lowest
  p95 -- the strongest MLX alternative the Core ML path is competing with.
- thermal_drift: sustained p50 above `threshold` x burst p50 (summary "sustained" / "burst").
- over_budget: p95 above the bucket's budget (the input contract).
- numeric_drift: the agent's numeric check against the numpy reference failed (numeric.ok false).
  numpy cells without a numeric record are the reference and get no verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from fleet_tui.model.gates import CellOutcome, GateVerdict, Verdict

if TYPE_CHECKING:
    from fleet_tui.config.spec import GateSpec

GATES: Final = ("coreml_regression", "thermal_drift", "over_budget", "numeric_drift")


@dataclass(frozen=True)
class GateReport:
    verdicts: tuple[GateVerdict, ...]

    @property
    def passed(self) -> bool:
        """True when no verdict failed (skipped verdicts do not fail a sweep)."""
        return not self.failures

    @property
    def failures(self) -> list[GateVerdict]:
        return [v for v in self.verdicts if v.verdict == "fail"]

    def counts(self) -> dict[str, int]:
        """verdict -> count, with all three verdicts present."""
        counts = {"pass": 0, "fail": 0, "skipped": 0}
        for v in self.verdicts:
            counts[v.verdict] += 1
        return counts


def evaluate_gates(
    outcomes: Sequence[CellOutcome], gates: GateSpec, budgets: Mapping[tuple[str, str], float]
) -> GateReport:
    """Every gate the spec turns on, over every cell. `budgets`: (workload, bucket) -> ms."""
    verdicts: list[GateVerdict] = []
    if gates.coreml_vs_mlx_p95 is not None:
        verdicts += coreml_regression(outcomes, gates.coreml_vs_mlx_p95)
    if gates.sustained_vs_burst is not None:
        verdicts += thermal_drift(outcomes, gates.sustained_vs_burst)
    if gates.budget:
        verdicts += over_budget(outcomes, budgets)
    if gates.numeric:
        verdicts += numeric_drift(outcomes)
    return GateReport(tuple(verdicts))


def coreml_regression(outcomes: Sequence[CellOutcome], threshold: float = 1.25) -> list[GateVerdict]:
    """Core ML p95 vs the MLX reference p95 of the same bucket on the same node (module doc)."""
    gate = "coreml_regression"
    verdicts: list[GateVerdict] = []
    for cell in outcomes:
        if cell.engine != "coreml":
            continue
        skip = _not_measured(cell, "p95")
        if skip:
            verdicts.append(_verdict(gate, "skipped", cell, skip, threshold=threshold))
            continue
        reference = _mlx_reference(cell, outcomes)
        if reference is None:
            verdicts.append(
                _verdict(
                    gate,
                    "skipped",
                    cell,
                    "no measured MLX cell in this bucket on this node",
                    threshold=threshold,
                )
            )
            continue
        coreml_p95, mlx_p95 = _num(cell, "p95"), _num(reference, "p95")
        assert coreml_p95 is not None and mlx_p95 is not None  # checked by _not_measured / _mlx_reference
        ratio = coreml_p95 / mlx_p95
        verdict: Verdict = "fail" if ratio > threshold else "pass"
        detail = (
            f"{cell.workload}/{cell.bucket} on {cell.node}: Core ML {_engine_key(cell)} "
            f"p95 {_ms(coreml_p95)} is {ratio:.2f}x MLX {_engine_key(reference)} p95 {_ms(mlx_p95)} "
            f"(limit {threshold:g}x)"
        )
        verdicts.append(_verdict(gate, verdict, cell, detail, value=ratio, threshold=threshold))
    return verdicts


def thermal_drift(outcomes: Sequence[CellOutcome], threshold: float = 1.2) -> list[GateVerdict]:
    """Sustained p50 vs burst p50 of each measured cell."""
    gate = "thermal_drift"
    verdicts: list[GateVerdict] = []
    for cell in outcomes:
        skip = _not_measured(cell, None)
        if skip:
            verdicts.append(_verdict(gate, "skipped", cell, skip, threshold=threshold))
            continue
        assert cell.summary is not None
        burst, sustained = _phase_p50(cell.summary, "burst"), _phase_p50(cell.summary, "sustained")
        if burst is None or sustained is None:
            verdicts.append(
                _verdict(
                    gate,
                    "skipped",
                    cell,
                    "no burst/sustained figures (sustained phase not run)",
                    threshold=threshold,
                )
            )
            continue
        ratio = sustained / burst
        verdict: Verdict = "fail" if ratio > threshold else "pass"
        detail = (
            f"{cell.workload}/{cell.bucket} on {cell.node}, {_engine_key(cell)}: "
            f"sustained p50 {_ms(sustained)} is {ratio:.2f}x burst p50 {_ms(burst)} (limit {threshold:g}x)"
        )
        if verdict == "fail":
            detail += "; move peak load to a dedicated node or cut concurrency"
        verdicts.append(_verdict(gate, verdict, cell, detail, value=ratio, threshold=threshold))
    return verdicts


def over_budget(
    outcomes: Sequence[CellOutcome], budgets: Mapping[tuple[str, str], float]
) -> list[GateVerdict]:
    """p95 of each measured cell vs its bucket's budget (ms)."""
    gate = "over_budget"
    verdicts: list[GateVerdict] = []
    for cell in outcomes:
        budget = budgets.get((cell.workload, cell.bucket))
        skip = _not_measured(cell, "p95")
        if skip is None and budget is None:
            skip = f"no budget for bucket {cell.workload}/{cell.bucket} in the spec"
        if skip:
            verdicts.append(_verdict(gate, "skipped", cell, skip, threshold=budget))
            continue
        assert budget is not None
        p95 = _num(cell, "p95")
        assert p95 is not None
        p95_ms = p95 / 1e6
        over = p95_ms > budget
        detail = (
            f"bucket {cell.workload}/{cell.bucket} on {cell.node}, {_engine_key(cell)}: p95 {_ms(p95)} "
            f"{'>' if over else '<='} budget {budget:g} ms"
        )
        verdicts.append(
            _verdict(gate, "fail" if over else "pass", cell, detail, value=p95_ms, threshold=budget)
        )
    return verdicts


def numeric_drift(outcomes: Sequence[CellOutcome]) -> list[GateVerdict]:
    """The agent's numeric check (output vs the numpy reference within the precision's tolerance)."""
    gate = "numeric_drift"
    verdicts: list[GateVerdict] = []
    for cell in outcomes:
        numeric = cell.summary.get("numeric") if cell.summary else None
        if cell.engine == "numpy" and not isinstance(numeric, Mapping):
            continue  # the reference itself
        skip = _not_measured(cell, None)
        if skip is None and not isinstance(numeric, Mapping):
            skip = "no numeric check recorded (measure.numeric = false?)"
        if skip:
            verdicts.append(_verdict(gate, "skipped", cell, skip))
            continue
        assert isinstance(numeric, Mapping)
        ok = numeric.get("ok")
        tolerance = numeric.get("tolerance")
        max_rel = _float(numeric.get("max_rel"))
        limit = _float(tolerance.get("max_rel")) if isinstance(tolerance, Mapping) else _float(tolerance)
        figures = ", ".join(
            f"{name} {value:.3g}"
            for name in ("max_abs", "max_rel", "cosine", "top1_agree")
            if (value := _float(numeric.get(name))) is not None
        )
        where = f"{cell.workload}/{cell.bucket} on {cell.node}, {_engine_key(cell)}"
        detail = f"{where} vs numpy: {figures or 'no figures'}"
        if isinstance(tolerance, Mapping):
            detail += (
                " (tolerance "
                + ", ".join(f"{k} {v:g}" for k, v in tolerance.items() if _float(v) is not None)
                + ")"
            )
        if not isinstance(ok, bool):
            verdicts.append(_verdict(gate, "skipped", cell, detail + "; numeric.ok missing"))
            continue
        verdicts.append(
            _verdict(gate, "pass" if ok else "fail", cell, detail, value=max_rel, threshold=limit)
        )
    return verdicts


# --- helpers -----------------------------------------------------------------------------------


def _verdict(
    gate: str,
    verdict: Verdict,
    cell: CellOutcome,
    detail: str,
    *,
    value: float | None = None,
    threshold: float | None = None,
) -> GateVerdict:
    return GateVerdict(
        gate=gate,
        verdict=verdict,
        node=cell.node,
        workload=cell.workload,
        bucket=cell.bucket,
        cell_id=cell.cell_id,
        cell_key=cell.key,
        detail=detail,
        value=value,
        threshold=threshold,
    )


def _not_measured(cell: CellOutcome, field: str | None) -> str | None:
    """Why the cell has no usable figures (None when it has them)."""
    if cell.state != "done":
        return f"cell {cell.state}" + (f": {cell.reason}" if cell.reason else "")
    if cell.summary is None:
        return "cell has no stored summary"
    if field is not None and _num(cell, field) is None:
        return f"summary has no {field}"
    return None


def _mlx_reference(cell: CellOutcome, outcomes: Iterable[CellOutcome]) -> CellOutcome | None:
    candidates = [
        o
        for o in outcomes
        if o.engine == "mlx"
        and o.node == cell.node
        and o.workload == cell.workload
        and o.bucket == cell.bucket
        and _not_measured(o, "p95") is None
        and (_num(o, "p95") or 0) > 0
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda o: (o.precision != cell.precision, o.config.get("device") != "gpu", _num(o, "p95")),
    )


def _num(cell: CellOutcome, field: str) -> float | None:
    return _float(cell.summary.get(field)) if cell.summary else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _phase_p50(summary: Mapping[str, Any], phase: str) -> float | None:
    stats = summary.get(phase)
    if not isinstance(stats, Mapping):
        return None
    p50 = _float(stats.get("p50"))
    return p50 if p50 is not None and p50 > 0 else None


def _engine_key(cell: CellOutcome) -> str:
    return cell.key.rsplit("/", 1)[-1]


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.3f} ms"
