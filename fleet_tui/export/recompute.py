"""Recompute a cell's summary and a run's gate verdicts from raw samples, the way the sweep did.

The agent summarises a cell (node_agent.runner.JobRunner.cell_summary) with
`node_agent.stats.summarize` over every run's measure-phase samples in arrival order, with the
run index of each sample; each run's own p50 / p95 are nearest-rank over that run's samples;
the sustained run's drift is `node_agent.measure.drift_of` over its measure + sustained samples
and their start times. The sweep then evaluates the gates over the stored summaries
(`fleet_tui.analysis.gates.evaluate_gates` with the spec's gates and budgets). This module does
the same from the samples a bundle carries and says where the stored figures disagree.

Only figures that follow from the samples are checked; context the agent measured besides them
(cold start, numeric check, compute plan, conditions) is taken as stored.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from node_agent import measure, stats

SUMMARIZE_KEYS: Final = (
    "n",
    "min",
    "p50",
    "p90",
    "p95",
    "p99",
    "max",
    "mean",
    "stdev",
    "cv",
    "mad",
    "ci95",
    "es",
    "outliers_mad",
    "outliers_iqr",
    "runs",
    "run_medians",
    "run_cv",
    "required_runs",
)
"""Summary fields `stats.summarize` derives from the samples."""
SUMMARIZE_FLAGS: Final = frozenset(
    {
        "cv_high",
        "max_far",
        "short_samples",
        "slow_initial",
        "few_samples_p50",
        "few_samples_p95",
        "few_samples_p99",
        "need_more_runs",
        "no_samples",
    }
)
DRIFT_KEYS: Final = (
    "n",
    "burst",
    "sustained",
    "ratio",
    "ci95",
    "mw_p",
    "kendall_tau",
    "kendall_p",
    "trend_points",
    "flag",
    "trend_flag",
    "n_used",
)
REL_TOL: Final = 1e-9


@dataclass(frozen=True)
class RunSamples:
    """One run of a cell: its measure-phase and sustained-phase samples (ns) and start times."""

    run: int
    measure_ns: Sequence[int]
    measure_t_ns: Sequence[int] = ()
    sustained_ns: Sequence[int] = ()
    sustained_t_ns: Sequence[int] = ()


def recompute(stored: Mapping[str, Any], runs: Sequence[RunSamples]) -> dict[str, Any]:
    """The stored summary with every sample-derived figure recomputed from `runs`."""
    ordered_runs = sorted(runs, key=lambda r: r.run)
    pooled: list[int] = []
    run_ids: list[int] = []
    for run in ordered_runs:
        pooled.extend(run.measure_ns)
        run_ids.extend([run.run] * len(run.measure_ns))
    clock = stored.get("clock") if isinstance(stored.get("clock"), Mapping) else {}
    assert isinstance(clock, Mapping)
    fresh = stats.summarize(
        pooled,
        n_warmup=int(stored.get("n_warmup") or 0),
        loops=int(stored.get("loops") or 1),
        duration_s=stored.get("duration_s"),
        clock_resolution_ns=float(clock.get("resolution_ns") or 1.0),
        run_ids=run_ids,
    )
    if stored.get("mode") == "micro":
        fresh["p99"] = None
        fresh["ci95"]["p99"] = None
        fresh["es"]["p99"] = None
    out = dict(stored)
    for key in SUMMARIZE_KEYS:
        if key in fresh:
            out[key] = fresh[key]
    flags = {f for f in stored.get("flags") or () if f not in SUMMARIZE_FLAGS and f != "thermal_drift"}
    flags |= set(fresh.get("flags", ()))
    by_run = {r.run: r for r in ordered_runs}
    per_run = []
    for entry in stored.get("per_run") or ():
        entry = dict(entry)
        run_index = entry.get("run")
        found = by_run.get(run_index) if isinstance(run_index, int) else None
        ordered = sorted(found.measure_ns) if found else []
        entry.update(
            n=len(ordered),
            p50=stats.nearest_rank(ordered, 0.5) if ordered else None,
            p95=stats.nearest_rank(ordered, 0.95) if ordered else None,
        )
        per_run.append(entry)
    if "per_run" in stored:
        out["per_run"] = per_run
    sustained_run = next((r for r in ordered_runs if len(r.sustained_ns)), None)
    drift = None
    if sustained_run is not None:
        record = measure.RunRecord(
            mode=str(stored.get("mode") or "latency"),
            loops=int(stored.get("loops") or 1),
            measured=array("q", sustained_run.measure_ns),
            measured_t_ns=array("q", sustained_run.measure_t_ns),
            sustained=array("q", sustained_run.sustained_ns),
            sustained_t_ns=array("q", sustained_run.sustained_t_ns),
        )
        drift = measure.drift_of(record)
    if drift is not None or "drift" in stored:
        out["drift"] = drift
        out["burst"] = drift.get("burst") if drift else None
        out["sustained"] = drift.get("sustained") if drift else None
    if drift and drift.get("flag"):
        flags.add("thermal_drift")
    out["flags"] = sorted(flags)
    return out


def differences(stored: Mapping[str, Any], fresh: Mapping[str, Any]) -> list[str]:
    """Where a stored summary and its recomputation disagree, one sentence per field."""
    found: list[str] = []
    keys = [*SUMMARIZE_KEYS, "per_run", "burst", "sustained"]
    for key in keys:
        if key in stored or key in fresh:
            found += _diff(key, stored.get(key), fresh.get(key))
    stored_drift, fresh_drift = stored.get("drift"), fresh.get("drift")
    if isinstance(stored_drift, Mapping) and isinstance(fresh_drift, Mapping):
        for key in DRIFT_KEYS:
            found += _diff(f"drift.{key}", stored_drift.get(key), fresh_drift.get(key))
    elif (stored_drift is None) != (fresh_drift is None):
        found.append(f"drift: stored {_show(stored_drift)}, recomputed {_show(fresh_drift)}")
    derived = SUMMARIZE_FLAGS | {"thermal_drift"}
    old = sorted(f for f in stored.get("flags") or () if f in derived)
    new = sorted(f for f in fresh.get("flags") or () if f in derived)
    if old != new:
        found.append(f"flags: stored {old}, recomputed {new}")
    return found


def _diff(where: str, a: Any, b: Any) -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            if where.startswith("per_run[") and key not in ("n", "p50", "p95"):
                continue
            out += _diff(f"{where}.{key}", a.get(key), b.get(key))
        return out
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{where}: stored {len(a)} entries, recomputed {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _diff(f"{where}[{i}]", x, y)
        return out
    if _same(a, b):
        return []
    return [f"{where}: stored {_show(a, where)}, recomputed {_show(b, where)}"]


def _same(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, numeric) and isinstance(b, numeric):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=REL_TOL)
    return bool(a == b)


_NS_FIELDS: Final = (
    "min",
    "p50",
    "p90",
    "p95",
    "p99",
    "max",
    "mean",
    "stdev",
    "mad",
    "ci95",
    "es",
    "run_medians",
)


def _show(value: Any, where: str = "") -> str:
    """A value as text; latencies (ns in summaries) also in milliseconds."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "none"
    if isinstance(value, int | float):
        leaf = where.split(".")[-1].split("[")[0]
        head = where.split(".")[0].split("[")[0]
        if leaf in _NS_FIELDS or head in _NS_FIELDS:
            return f"{value / 1e6:.6g} ms"
        return f"{value:.6g}"
    return repr(value)
