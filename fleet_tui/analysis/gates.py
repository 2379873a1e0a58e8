"""The runbook's gates (docs/DESIGN.md, "The runbook"), as pure functions over stored cell results.

Each gate returns one `GateVerdict` per cell it applies to: "pass", "fail" (with the figures in
`detail`), "inconclusive" (the data cannot decide: the figure rests on fewer samples than its
floor, or its 95% interval straddles the threshold) or "skipped" (with the reason: the cell did
not run, or an input is missing). A verdict is judged on the interval the summary publishes
(docs/MEASUREMENT.md, "Gates"): fail when the whole interval is beyond the threshold, pass when
it is all within. Summaries stored before intervals were gate-ready (no `interval_method` /
drift `method`) are judged on the point figure, as they were, except that a figure below its
sample floor is still inconclusive.

`gate_exit_code` turns a report into the run's gate exit: 1 when a verdict failed; inconclusive
verdicts are always reported but fail the run only with ``strict``; skipped never fail.

Latency figures in summaries are nanoseconds (node_agent.stats); details print milliseconds.

- coreml_regression: a Core ML cell's p95 above `threshold` x the MLX reference p95 of the same
  bucket on the same node. The MLX reference is chosen among that bucket's measured MLX cells:
  same precision first (coreml fp16 <-> mlx fp16), then the GPU before the CPU, then the lowest
  p95 -- the strongest MLX alternative the Core ML path is competing with.
- thermal_drift: the summary's drift ratio, median of the sustained phase's final window over the
  median of the measured (burst) phase, above `threshold` (older summaries: "sustained" /
  "burst" p50).
- over_budget: p95 above the bucket's budget (the input contract).
- numeric_drift: the agent's numeric check against the numpy reference failed (numeric.ok false).
  numpy cells without a numeric record are the reference and get no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from fleet_tui.model.exit_codes import ExitCode
from fleet_tui.model.gates import VERDICTS, CellOutcome, GateVerdict, Verdict
from node_agent.tdist import t_ppf

if TYPE_CHECKING:
    from fleet_tui.config.spec import GateSpec

EXIT_GATES_OK: Final = int(ExitCode.OK)
EXIT_GATES_FAILED: Final = int(ExitCode.GATE_FAILED)
_FLOOR_FLAGS: Final = {"p50": "few_samples_p50", "p95": "few_samples_p95", "p99": "few_samples_p99"}
_DOUBT_FLAGS: Final = ("need_more_runs", "not_converged", "autocorrelated")

GATES: Final = ("coreml_regression", "thermal_drift", "over_budget", "numeric_drift")


@dataclass(frozen=True)
class GateReport:
    verdicts: tuple[GateVerdict, ...]

    @property
    def passed(self) -> bool:
        """True when no verdict failed (skipped and inconclusive verdicts do not fail by default)."""
        return not self.failures

    @property
    def failures(self) -> list[GateVerdict]:
        return [v for v in self.verdicts if v.verdict == "fail"]

    @property
    def inconclusive(self) -> list[GateVerdict]:
        """Verdicts the data could not decide: always show them (they fail a --strict run)."""
        return [v for v in self.verdicts if v.verdict == "inconclusive"]

    def counts(self) -> dict[str, int]:
        """verdict -> count, with all four verdicts present."""
        counts = dict.fromkeys(VERDICTS, 0)
        for v in self.verdicts:
            counts[v.verdict] += 1
        return counts

    def exit_code(self, *, strict: bool = False) -> int:
        return gate_exit_code(self, strict=strict)


def gate_exit_code(report: GateReport, *, strict: bool = False) -> int:
    """The run's gate exit: 1 when a gate failed, or (``strict``) when one was inconclusive; else 0.

    Inconclusive means the data could not decide (too few samples, or an interval that
    straddles the threshold). By default that does not fail the run, but it is always reported;
    ``strict`` treats it as a failure. Skipped verdicts never fail.
    """
    if report.failures or (strict and report.inconclusive):
        return EXIT_GATES_FAILED
    return EXIT_GATES_OK


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
        detail = (
            f"{cell.workload}/{cell.bucket} on {cell.node}: Core ML {_engine_key(cell)} "
            f"p95 {_ms(coreml_p95)} is {ratio:.2f}x MLX {_engine_key(reference)} p95 {_ms(mlx_p95)}"
        )
        interval = _ratio_interval(cell.summary, reference.summary, "p95")
        if interval is not None:
            detail += f" (95% CI {interval[0]:.2f}-{interval[1]:.2f}x)"
        detail += f" (limit {threshold:g}x)"
        verdict, why = _judge(ratio, interval, threshold, [cell, reference], "p95")
        verdicts.append(_verdict(gate, verdict, cell, detail + why, value=ratio, threshold=threshold))
    return verdicts


def thermal_drift(outcomes: Sequence[CellOutcome], threshold: float = 1.2) -> list[GateVerdict]:
    """The sustained/burst median ratio of each measured cell (module doc)."""
    gate = "thermal_drift"
    verdicts: list[GateVerdict] = []
    for cell in outcomes:
        skip = _not_measured(cell, None)
        if skip:
            verdicts.append(_verdict(gate, "skipped", cell, skip, threshold=threshold))
            continue
        assert cell.summary is not None
        drift = cell.summary.get("drift")
        if isinstance(drift, Mapping) and drift.get("method") == "burst_vs_final_window":
            verdicts.append(_drift_verdict(gate, cell, drift, threshold))
            continue
        # A summary from before the drift method: the point ratio of the stored phase p50s.
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


def _drift_verdict(gate: str, cell: CellOutcome, drift: Mapping[str, Any], threshold: float) -> GateVerdict:
    ratio = _float(drift.get("ratio"))
    burst, sustained = drift.get("burst"), drift.get("sustained")
    if ratio is None or not isinstance(burst, Mapping) or not isinstance(sustained, Mapping):
        reason = drift.get("reason") or "no drift ratio"
        return _verdict(
            gate, "inconclusive", cell, f"sustained phase too short to judge: {reason}", threshold=threshold
        )
    ci = _interval(drift.get("ci95"))
    burst_p50, sustained_p50 = _float(burst.get("p50")), _float(sustained.get("p50"))
    fraction = _float(drift.get("final_fraction"))
    window = f"last {100 * fraction:g}% of the sustained phase" if fraction else "sustained window"
    detail = (
        f"{cell.workload}/{cell.bucket} on {cell.node}, {_engine_key(cell)}: sustained p50 "
        f"({window}) {_ms(sustained_p50 or 0.0)} is {ratio:.2f}x burst p50 (measured phase) "
        f"{_ms(burst_p50 or 0.0)}"
    )
    if ci is not None:
        detail += f" (95% CI {ci[0]:.3f}-{ci[1]:.3f}x)"
    detail += f" (limit {threshold:g}x)"
    verdict, why = _judge(ratio, ci, threshold, [cell], None)
    if verdict == "fail":
        why += "; move peak load to a dedicated node or cut concurrency"
    return _verdict(gate, verdict, cell, detail + why, value=ratio, threshold=threshold)


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
        assert budget is not None and cell.summary is not None
        p95 = _num(cell, "p95")
        assert p95 is not None
        p95_ms = p95 / 1e6
        interval = _new_interval(cell.summary, "p95")
        interval_ms = None if interval is None else (interval[0] / 1e6, interval[1] / 1e6)
        verdict, why = _judge(p95_ms, interval_ms, budget, [cell], "p95")
        fastest = _num(cell, "min")
        if verdict == "inconclusive" and fastest is not None and fastest / 1e6 > budget:
            # Every sample is over: the chance that the true p95 is within budget is below 0.05**n.
            verdict, why = "fail", f"; every sample is over budget (fastest {_ms(fastest)})"
        sign = {"fail": ">", "pass": "<="}.get(verdict, ">" if p95_ms > budget else "<=")
        detail = (
            f"bucket {cell.workload}/{cell.bucket} on {cell.node}, {_engine_key(cell)}: p95 {_ms(p95)} "
            f"{sign} budget {budget:g} ms"
        )
        if interval_ms is not None:
            detail += f" (95% CI {interval_ms[0]:.3f}-{interval_ms[1]:.3f} ms)"
        verdicts.append(_verdict(gate, verdict, cell, detail + why, value=p95_ms, threshold=budget))
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


def _judge(
    value: float,
    interval: tuple[float, float] | None,
    threshold: float,
    cells: Sequence[CellOutcome],
    field: str | None,
) -> tuple[Verdict, str]:
    """(verdict, detail suffix) of "value above threshold fails", judged on the interval.

    Too few samples behind the figure -> inconclusive, whatever the figures say. With an
    interval: fail when it lies wholly above the threshold, pass when wholly at or below,
    inconclusive when it straddles (naming need_more_runs / not_converged / autocorrelated
    when a cell has them). Without one: a summary of the new kind that publishes no interval
    is inconclusive; an old summary is judged on the point value, as before.
    """
    if field is not None:
        short = [c for c in cells if _below_floor(c, field)]
        if short:
            return "inconclusive", "; inconclusive: " + "; ".join(_floor_reason(c, field) for c in short)
    if interval is None:
        if field is not None and any(_is_gate_ready(c.summary) for c in cells):
            return "inconclusive", f"; inconclusive: no 95% interval for {field}"
        return ("fail" if value > threshold else "pass"), ""
    lo, hi = interval
    if lo > threshold:
        return "fail", ""
    if hi <= threshold:
        return "pass", ""
    doubts = sorted({flag for c in cells for flag in _flags(c) if flag in _DOUBT_FLAGS})
    because = f" ({', '.join(doubts)})" if doubts else ""
    return "inconclusive", f"; inconclusive: the interval straddles the limit{because}"


def _flags(cell: CellOutcome) -> list[str]:
    flags = cell.summary.get("flags") if cell.summary else None
    return [f for f in flags if isinstance(f, str)] if isinstance(flags, list) else []


def _below_floor(cell: CellOutcome, field: str) -> bool:
    flags = _flags(cell)
    return _FLOOR_FLAGS.get(field, "") in flags or "invalid_samples" in flags


def _floor_reason(cell: CellOutcome, field: str) -> str:
    summary = cell.summary or {}
    if "invalid_samples" in _flags(cell):
        return f"{_engine_key(cell)} has invalid samples"
    runs = summary.get("runs")
    n = summary.get("n")
    per_run = summary.get("per_run")
    if isinstance(per_run, list) and per_run and all(isinstance(r, Mapping) for r in per_run):
        counts = [r.get("n") for r in per_run if isinstance(r.get("n"), int)]
        if counts:
            n = min(counts)
    where = " per run" if isinstance(runs, list) and len(runs) > 1 else ""
    return (
        f"{_engine_key(cell)} {field} rests on n={n}{where}, below its sample floor ({_FLOOR_FLAGS[field]})"
    )


def _is_gate_ready(summary: Mapping[str, Any] | None) -> bool:
    """True for summaries whose ci95 is the interval the method justifies (run-level or within-run)."""
    return bool(summary) and summary is not None and summary.get("interval_method") is not None


def _interval(raw: Any) -> tuple[float, float] | None:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        return None
    lo, hi = _float(raw[0]), _float(raw[1])
    if lo is None or hi is None or lo > hi:
        return None
    return lo, hi


def _new_interval(summary: Mapping[str, Any], field: str) -> tuple[float, float] | None:
    """The summary's ci95 for ``field``, only when it is a gate-ready interval (else None)."""
    if not _is_gate_ready(summary):
        return None
    ci95 = summary.get("ci95")
    return _interval(ci95.get(field)) if isinstance(ci95, Mapping) else None


def _log_spread(summary: Mapping[str, Any] | None, field: str) -> tuple[float, float, float] | None:
    """(log estimate, its standard error, degrees of freedom) of a summary's figure, or None."""
    if summary is None:
        return None
    method = summary.get("interval_method")
    if method == "t_log_runs":
        level = summary.get("run_level")
        stat = level.get(field) if isinstance(level, Mapping) else None
        runs = level.get("n_runs") if isinstance(level, Mapping) else None
        if not isinstance(stat, Mapping) or not isinstance(runs, int) or runs < 2:
            return None
        mean, sd = _float(stat.get("log_mean")), _float(stat.get("log_sd"))
        if mean is None or sd is None:
            return None
        return mean, sd / math.sqrt(runs), float(runs - 1)
    if method == "order_statistic":
        ci = _new_interval(summary, field)
        estimate = _float(summary.get(field))
        if ci is None or estimate is None or ci[0] <= 0 or estimate <= 0:
            return None
        return math.log(estimate), (math.log(ci[1]) - math.log(ci[0])) / (2 * 1.959964), math.inf
    return None


def _ratio_interval(
    numerator: Mapping[str, Any] | None, denominator: Mapping[str, Any] | None, field: str
) -> tuple[float, float] | None:
    """95% interval of numerator/denominator from each side's log spread (Welch-Satterthwaite df)."""
    a, b = _log_spread(numerator, field), _log_spread(denominator, field)
    if a is None or b is None:
        return None
    se2 = a[1] ** 2 + b[1] ** 2
    if se2 == 0:
        ratio = math.exp(a[0] - b[0])
        return ratio, ratio
    terms = sum(se**4 / df for _, se, df in (a, b) if math.isfinite(df) and df > 0)
    df = se2**2 / terms if terms > 0 else math.inf
    half = t_ppf(0.975, df) * math.sqrt(se2)
    centre = a[0] - b[0]
    return math.exp(centre - half), math.exp(centre + half)


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
