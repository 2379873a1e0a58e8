"""Recompute a cell's summary and a run's gate verdicts from raw samples, the way the sweep did.

The agent's sample-derived figures come from one function, `node_agent.stats.cell_figures`
(JobRunner.cell_summary calls it too): run-level intervals over the pooled raw samples with
their run index, the merged per-run lines, and the sustained run's drift. This module rebuilds
that function's inputs from the samples a bundle carries (per-run p50 / p95 and the drift via
`node_agent.measure`, on elapsed / loops as floats, as the worker computes them), calls it, and
says where the stored figures disagree. The sweep then evaluates the gates over the summaries
(`fleet_tui.analysis.gates.evaluate_gates`); the bundle does the same over the recomputed ones.

Only figures that follow from the samples are checked; context the agent measured besides them
(cold start, numeric check, compute plan, conditions) is taken as stored.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from node_agent import measure, stats

CHECKED_KEYS: Final = (
    "n",
    "n_warmup",
    "loops",
    "duration_s",
    "resolution_ns",
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
    "interval_method",
    "es",
    "outliers_mad",
    "outliers_iqr",
    "runs",
    "run_medians",
    "run_cv",
    "required_runs",
    "run_level",
    "pooled",
    "autocorrelation",
    "burst",
    "sustained",
)
"""Summary fields `stats.cell_figures` derives from the samples, compared one by one (flags,
per-run lines and drift are compared separately; notes are prose about the checked figures)."""
RUN_LINE_CHECKED: Final = ("n", "p50", "p90", "p95", "p99", "ci95", "autocorrelated")
"""Per-run fields that follow from the run's samples."""
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
_RUN_LINE: Final = re.compile(r"per_run\[\d+\]")


@dataclass(frozen=True)
class RunSamples:
    """One run of a cell: raw measure- and sustained-phase samples (ns of `loops` calls each, as
    the agent sent them) and their start times."""

    run: int
    measure_ns: Sequence[int]
    measure_t_ns: Sequence[int] = ()
    sustained_ns: Sequence[int] = ()
    sustained_t_ns: Sequence[int] = ()


@dataclass(frozen=True)
class Settings:
    """The measurement settings the summary depends on (the spec's `measure` table)."""

    want_p99: bool = False
    epsilon: float = 0.02


DEFAULT_SETTINGS: Final = Settings()


def _run_record(line: Mapping[str, Any], samples: RunSamples | None, mode: str, loops: int) -> dict[str, Any]:
    """A worker's run record rebuilt from a stored per-run line and the run's raw samples."""
    record = dict(line)
    elapsed = array("q", samples.measure_ns) if samples else array("q")
    per_call = measure.per_call(elapsed, loops)
    ordered = sorted(per_call)
    record.update(
        n=len(ordered),
        p50=stats.nearest_rank(ordered, 0.5) if ordered else None,
        p95=stats.nearest_rank(ordered, 0.95) if ordered else None,
        drift=None,
    )
    if samples is not None and len(samples.sustained_ns):
        run = measure.RunRecord(
            mode=mode,
            loops=loops,
            measured=per_call,
            measured_elapsed=elapsed,
            measured_t_ns=array("q", samples.measure_t_ns),
            sustained=measure.per_call(array("q", samples.sustained_ns), loops),
            sustained_elapsed=array("q", samples.sustained_ns),
            sustained_t_ns=array("q", samples.sustained_t_ns),
        )
        record["drift"] = measure.drift_of(run)
    return record


def recompute(
    stored: Mapping[str, Any], runs: Sequence[RunSamples], settings: Settings = DEFAULT_SETTINGS
) -> dict[str, Any]:
    """The stored summary with every sample-derived figure recomputed from `runs`."""
    ordered_runs = sorted(runs, key=lambda r: r.run)
    mode = str(stored.get("mode") or "latency")
    loops = int(stored.get("loops") or 1)
    pooled: list[int] = []
    run_ids: list[int] = []
    for run in ordered_runs:
        pooled.extend(run.measure_ns)
        run_ids.extend([run.run] * len(run.measure_ns))
    raw_clock = stored.get("clock")
    clock: Mapping[str, Any] = raw_clock if isinstance(raw_clock, Mapping) else {}
    by_run = {r.run: r for r in ordered_runs}
    lines = [line for line in stored.get("per_run") or () if isinstance(line, Mapping)]
    if not lines:  # a summary without per-run lines: one line per run that has samples
        lines = [{"run": r.run} for r in ordered_runs]
    records = [
        _run_record(line, by_run.get(line["run"]) if isinstance(line.get("run"), int) else None, mode, loops)
        for line in lines
    ]
    fresh = stats.cell_figures(
        pooled,
        run_ids,
        records,
        mode=mode,
        loops=loops,
        clock_resolution_ns=float(clock.get("resolution_ns") or 1.0),
        want_p99=settings.want_p99,
        epsilon=settings.epsilon,
    )
    out = dict(stored)
    for key in CHECKED_KEYS:
        if key in fresh or key in stored:
            out[key] = fresh.get(key)
    if "per_run" in stored:
        out["per_run"] = [
            {**line, **{k: fresh_line.get(k) for k in RUN_LINE_CHECKED if k in fresh_line}}
            for line, fresh_line in zip(lines, fresh["per_run"], strict=True)
        ]
    if fresh["drift"] is not None or "drift" in stored:
        out["drift"] = fresh["drift"]
    flags = {f for f in stored.get("flags") or () if f not in stats.SAMPLE_FLAGS}
    out["flags"] = sorted(flags | set(fresh["flags"]))
    return out


def differences(stored: Mapping[str, Any], fresh: Mapping[str, Any]) -> list[str]:
    """Where a stored summary and its recomputation disagree, one sentence per field."""
    found: list[str] = []
    for key in (*CHECKED_KEYS, "per_run"):
        if key in stored or key in fresh:
            found += _diff(key, stored.get(key), fresh.get(key))
    stored_drift, fresh_drift = stored.get("drift"), fresh.get("drift")
    if isinstance(stored_drift, Mapping) and isinstance(fresh_drift, Mapping):
        for key in DRIFT_KEYS:
            found += _diff(f"drift.{key}", stored_drift.get(key), fresh_drift.get(key))
    elif (stored_drift is None) != (fresh_drift is None):
        found.append(f"drift: stored {_show(stored_drift)}, recomputed {_show(fresh_drift)}")
    old = sorted(f for f in stored.get("flags") or () if f in stats.SAMPLE_FLAGS)
    new = sorted(f for f in fresh.get("flags") or () if f in stats.SAMPLE_FLAGS)
    if old != new:
        found.append(f"flags: stored {old}, recomputed {new}")
    return found


def _diff(where: str, a: Any, b: Any) -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            if _RUN_LINE.fullmatch(where) and key not in RUN_LINE_CHECKED:
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
