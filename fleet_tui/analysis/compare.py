"""The comparisons: SoC side by side, run vs run, and Core ML against MLX on the same node.

Each builder takes `RunEvidence` (evidence.py) and returns a `ComparisonTable` (tables.py); no
I/O, no formatting. The statistics are runstats.py's: Welch on the log of per-run statistics,
a minimum effect, runs needed, and a Hodges-Lehmann / Mann-Whitney second opinion.

Rules every builder applies:
- cells are compared only when their comparability keys match (evidence.comparability_key);
- a cell below its sample floors is shown with its flags and never called faster or slower
  (verdict "insufficient");
- whether a cell has runs enough is judged here, against the minimum effect: the Welch interval
  over runs already carries the between-run spread, and a no-difference verdict that could not
  have resolved the minimum effect says how many runs it needs. The agent's `need_more_runs`
  (its p95 interval wider than +-epsilon, a precision target for publishing one cell) is shown
  beside the cell but does not block a verdict: at 2% between-run spread it fires on most
  cells, while the comparison's own false-verdict rate stays under 5% (tests/unit/
  test_compare_stats.py);
- a speed-up whose numeric gate failed is marked numeric_gate_failed, never a plain win;
- conditions that do not change the key (macOS build, power, Low Power Mode, thermal state,
  contention) are warnings beside the cell.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from fleet_tui.analysis.evidence import (
    ENGINE_KEY_FIELDS,
    CellEvidence,
    NodeInfo,
    RunEvidence,
    key_difference,
)
from fleet_tui.analysis.runstats import compare_run_values
from fleet_tui.analysis.tables import (
    Cell,
    Change,
    Column,
    ComparisonTable,
    DeviceShare,
    Energy,
    Estimate,
    GateBadge,
    NumericCheck,
    Ratio,
    Row,
)
from node_agent.stats import quantile_ci
from node_agent.tdist import t_ppf

DEFAULT_MIN_EFFECT = 0.02
COREML_GATE_DEFAULT = 1.25
RATIO_METRICS = ("p50", "p95", "cold", "cost", "energy")
"""Metrics with a run-level ratio; drift and share are shown but not tested (one value per cell)."""

_NS_PER_MS = 1e6


class CompareError(ValueError):
    """Nothing to compare (no runs, no comparable cells, unknown baseline): exit 2."""


# --- per-cell figures -----------------------------------------------------------------------------


def run_level_estimate(values: Sequence[float], unit: str = "ms", conf: float = 0.95) -> Estimate | None:
    """Geometric mean of per-run values with a t interval over runs (None without values)."""
    logs = [math.log(v) for v in values if v > 0 and math.isfinite(v)]
    if not logs:
        return None
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return Estimate(math.exp(mean), unit=unit)
    half = t_ppf(1 - (1 - conf) / 2, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return Estimate(math.exp(mean), math.exp(mean - half), math.exp(mean + half), unit, "run_level_t")


def latency_estimate(
    per_run_ns: Sequence[float], pooled_sorted_ns: Sequence[float], q: float
) -> Estimate | None:
    """A latency quantile in ms: run-level with 2+ runs, else the pooled order-statistic interval."""
    if len(per_run_ns) >= 2:
        return run_level_estimate([v / _NS_PER_MS for v in per_run_ns])
    if not pooled_sorted_ns:
        return None
    from node_agent.stats import nearest_rank

    value = nearest_rank(pooled_sorted_ns, q) / _NS_PER_MS
    ci = quantile_ci(pooled_sorted_ns, q)
    if ci is None:
        return Estimate(value, unit="ms")
    return Estimate(value, ci[0] / _NS_PER_MS, ci[1] / _NS_PER_MS, "ms", "order_statistic")


def floor_flags(ev: CellEvidence, metric: str) -> list[str]:
    """The flags that keep a cell from being called faster or slower for `metric`."""
    blocking = {"no_samples", "invalid_samples"}
    if metric == "p50":
        blocking.add("few_samples_p50")
    elif metric in ("p95", "cost"):
        blocking.add("few_samples_p95")
    return [f for f in ev.flags if f in blocking]


def metric_values(ev: CellEvidence, metric: str) -> list[float]:
    """One value per run for a ratio metric (latencies in ms)."""
    if metric == "p50":
        return [v / _NS_PER_MS for v in ev.measure.p50]
    if metric == "p95":
        return [v / _NS_PER_MS for v in ev.measure.p95]
    if metric == "cold":
        return list(ev.cold_start_ms)
    if metric == "cost":
        phase = ev.sustained if ev.sustained.runs else ev.measure
        return [v / _NS_PER_MS for v in phase.mean]
    if metric == "energy":
        return list(ev.energy_values("soc"))
    return []


def energy_floor(ev: CellEvidence) -> str | None:
    """Why a cell has no energy to compare (None when it has per-run joules per inference)."""
    energy = ev.energy
    if energy is None:
        return "no energy measured (spec [measure] energy is off)"
    status = energy.get("status")
    if status != "ok":
        return f"no energy published ({status})"
    values = ev.energy_values("soc")
    if not values:
        return "no SoC joules per inference (no idle baseline)"
    if any(v <= 0 for v in values):
        return "joules per inference at or below idle in a run (below_idle)"
    return None


def cell_energy(ev: CellEvidence, throughput_per_s: float | None) -> Energy | None:
    """The table's energy figures of one cell (None when it was measured without a reader)."""
    energy = ev.energy
    if energy is None:
        return None
    reader = energy.get("reader") if isinstance(energy.get("reader"), Mapping) else {}
    assert isinstance(reader, Mapping)

    def number(group: str, rail: str) -> float | None:
        raw = energy.get(group)
        return _num(raw.get(rail)) if isinstance(raw, Mapping) else None

    def estimate(rail: str) -> Estimate | None:
        values = ev.energy_values(rail)
        if values and all(v > 0 for v in values):
            found = run_level_estimate(values, unit="J")
            if found is not None:
                return found
        raw = energy.get("j_per_inference")
        figure = raw.get(rail) if isinstance(raw, Mapping) else None
        value = _num(figure.get("estimate")) if isinstance(figure, Mapping) else None
        return None if value is None else Estimate(value, unit="J")

    watts_soc = number("avg_watts", "soc")
    flags = energy.get("flags")
    return Energy(
        status=str(energy.get("status")),
        reader=reader.get("name") if isinstance(reader.get("name"), str) else None,
        reader_version=reader.get("version") if isinstance(reader.get("version"), str) else None,
        window=energy.get("window") if isinstance(energy.get("window"), str) else None,
        j_per_inference=estimate("soc"),
        j_per_inference_system=estimate("system"),
        watts_soc=watts_soc,
        watts_system=number("avg_watts", "system"),
        idle_watts_soc=number("idle_watts", "soc"),
        idle_watts_system=number("idle_watts", "system"),
        perf_per_watt=throughput_per_s / watts_soc
        if throughput_per_s is not None and watts_soc is not None and watts_soc > 0
        else None,
        flags=tuple(str(f) for f in flags) if isinstance(flags, list) else (),
    )


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _numeric_check(summary: Mapping[str, object] | None) -> NumericCheck | None:
    raw = summary.get("numeric") if summary else None
    if not isinstance(raw, Mapping):
        return None
    tolerance = raw.get("tolerance")
    limit = _num(tolerance.get("max_rel")) if isinstance(tolerance, Mapping) else _num(tolerance)
    ok = raw.get("ok")
    return NumericCheck(
        ok=ok if isinstance(ok, bool) else None,
        max_abs=_num(raw.get("max_abs")),
        max_rel=_num(raw.get("max_rel")),
        cosine=_num(raw.get("cosine")),
        tolerance_max_rel=limit,
    )


def _compute_plan(
    summary: Mapping[str, object] | None,
) -> tuple[tuple[DeviceShare, ...], int | None, int | None]:
    plan = summary.get("compute_plan") if summary else None
    if not isinstance(plan, Mapping) or plan.get("status") != "ok":
        return (), None, None
    shares = plan.get("cost_share") if isinstance(plan.get("cost_share"), Mapping) else {}
    counts = plan.get("op_count") if isinstance(plan.get("op_count"), Mapping) else {}
    assert isinstance(shares, Mapping) and isinstance(counts, Mapping)
    devices = [d for d in ("ane", "gpu", "cpu") if d in shares or d in counts]
    result = tuple(DeviceShare(d, _num(shares.get(d)) or 0.0, int(_num(counts.get(d)) or 0)) for d in devices)
    n_ops = _num(plan.get("n_ops"))
    fallback = _num(plan.get("n_fallback"))
    return result, None if n_ops is None else int(n_ops), None if fallback is None else int(fallback)


def _drift(summary: Mapping[str, object] | None) -> Estimate | None:
    raw = summary.get("drift") if summary else None
    if not isinstance(raw, Mapping):
        return None
    ratio = _num(raw.get("ratio"))
    if ratio is None:
        return None
    ci = raw.get("ci95")
    low = _num(ci[0]) if isinstance(ci, list) and len(ci) == 2 else None
    high = _num(ci[1]) if isinstance(ci, list) and len(ci) == 2 else None
    return Estimate(ratio, low, high, "x", "bootstrap" if low is not None else "")


def condition_warnings(ev: CellEvidence, reference: CellEvidence | None) -> list[str]:
    """Conditions worth a warning: absolute (battery, Low Power Mode, pressure, contention) and
    differences from the reference (macOS build, power source)."""
    mine = ev.conditions()
    warnings: list[str] = []
    if mine["power source"] not in (None, "ac", "AC Power", "ac_power"):
        warnings.append(f"power source: {mine['power source']}")
    if mine["Low Power Mode"] in ("True", "true", "1"):
        warnings.append("Low Power Mode on")
    if mine["thermal state at start"] not in (None, "nominal"):
        warnings.append(f"thermal state at start: {mine['thermal state at start']}")
    if mine["contention"]:
        warnings.append(f"contention: {mine['contention']}")
    if reference is not None:
        theirs = reference.conditions()
        for name in ("macOS build", "power source"):
            if mine[name] != theirs[name] and (mine[name] or theirs[name]):
                warnings.append(f"{name} {mine[name]} vs {theirs[name]} on the reference")
    return warnings


def _ms(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(v / _NS_PER_MS for v in values)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def ratio_text(r: Ratio, *, cost: bool = False) -> str:
    """The human sentence of a ratio (also stored in Ratio.text)."""
    if r.estimate is None or r.verdict == "insufficient":
        return f"insufficient: {r.reason}" if r.reason else "insufficient"
    interval = f" ({r.low:.3f}-{r.high:.3f})" if r.low is not None and r.high is not None else ""
    words = {
        "faster": "cheaper" if cost else "faster",
        "slower": "dearer" if cost else "slower",
        "no_significant_difference": "no significant difference",
    }
    if r.metric == "energy":
        words |= {"faster": "less energy", "slower": "more energy"}
    text = f"{r.estimate:.3f}x{interval} {words[r.verdict]}"
    if r.numeric_gate_failed and r.verdict == "faster":
        text += " but the numeric gate failed"
    if r.runs_needed is not None:
        text += f"; need {r.runs_needed} runs to resolve {_pct(r.min_effect)}"
    if r.methods_disagree:
        text += f" (Mann-Whitney on runs says {r.robust_verdict.replace('_', ' ')})"
    return text


def compare_cells(
    ev: CellEvidence,
    reference: CellEvidence | None,
    metric: str,
    min_effect: float,
    reference_name: str,
    *,
    scale: float = 1.0,
    across_engines: bool = False,
) -> Ratio:
    """`ev` against `reference` for a ratio metric; every rule of the module doc applied.

    `scale` multiplies this cell's values (the price ratio for the cost metric);
    `across_engines` leaves the engine's own key fields out of the comparability check."""

    def insufficient(reason: str) -> Ratio:
        r = Ratio(
            metric=metric, reference=reference_name, estimate=None, min_effect=min_effect, reason=reason
        )
        return _with_text(r, metric)

    if reference is None:
        return insufficient("the reference has no such cell")
    if ev.cell.state != "done":
        return insufficient(f"cell {ev.cell.state}")
    if reference.cell.state != "done":
        return insufficient(f"reference cell {reference.cell.state}")
    if metric not in RATIO_METRICS:
        return insufficient(f"{metric} is shown, not tested (one value per cell)")
    differences = key_difference(ev.key, reference.key, ENGINE_KEY_FIELDS if across_engines else ())
    if differences:
        return insufficient("not comparable: " + "; ".join(differences))
    if metric == "energy":
        missing = energy_floor(ev)
        if missing is not None:
            return insufficient(missing)
        missing = energy_floor(reference)
        if missing is not None:
            return insufficient(f"reference: {missing}")
    mine, theirs = metric_values(ev, metric), metric_values(reference, metric)
    result = compare_run_values(theirs, [v * scale for v in mine], min_effect)
    welch = result.welch
    blocked = floor_flags(ev, metric) + [f"reference {f}" for f in floor_flags(reference, metric)]
    reason = result.reason
    verdict, robust = result.verdict, result.robust_verdict
    if blocked:
        verdict, robust = "insufficient", "insufficient"
        reason = "below floors: " + ", ".join(blocked)
    numeric = _numeric_check(ev.summary)
    r = Ratio(
        metric=metric,
        reference=reference_name,
        estimate=welch.ratio if welch else None,
        low=welch.low if welch else None,
        high=welch.high if welch else None,
        verdict=verdict,
        min_effect=min_effect,
        p_value=welch.p_value if welch else None,
        df=welch.df if welch else None,
        runs=len(mine),
        reference_runs=len(theirs),
        runs_needed=result.runs_needed if not blocked else None,
        resolvable_effect=result.resolvable_effect,
        hl_ratio=result.hl_ratio,
        mw_p=result.mw_p,
        robust_verdict=robust,
        methods_disagree=result.methods_disagree and not blocked,
        numeric_gate_failed=numeric is not None and numeric.ok is False,
        reason=reason,
    )
    return _with_text(r, metric)


def _with_text(r: Ratio, metric: str) -> Ratio:
    from dataclasses import replace

    return replace(r, text=ratio_text(r, cost=metric == "cost"))


def build_cell(
    ev: CellEvidence,
    row: str,
    column: str,
    ratio: Ratio | None,
    reference: CellEvidence | None,
    metric: str,
) -> Cell:
    """The table cell of one stored cell (figures in ms), with `ratio` against its reference."""
    summary = ev.summary
    share, n_ops, fallback = _compute_plan(summary)
    flags = list(ev.flags)
    if ev.cell.state == "done" and ev.measure.runs == 1:
        flags.append("single_run")
    blocked = floor_flags(ev, metric)
    if blocked:
        flags.append("below_floors")
    if ratio is not None and ratio.methods_disagree:
        flags.append("methods_disagree")
    if ratio is not None and ratio.numeric_gate_failed:
        flags.append("numeric_gate_failed")
    sustained = ev.sustained if ev.sustained.runs else ev.measure
    if ev.cell.state == "done" and not ev.sustained.runs:
        flags.append("no_sustained_phase")
    p50 = latency_estimate(ev.measure.p50, ev.measure.pooled_sorted, 0.5)
    tokens = _num(summary.get("tokens_per_s")) if summary else None
    return Cell(
        row=row,
        column=column,
        state=ev.cell.state,
        reason=ev.cell.reason,
        run_id=ev.run_id,
        cell_id=ev.cell.id,
        n=ev.measure.total,
        runs=ev.measure.runs,
        p50_ms=p50,
        p95_ms=latency_estimate(ev.measure.p95, ev.measure.pooled_sorted, 0.95),
        per_run_p50_ms=_ms(ev.measure.p50),
        per_run_p95_ms=_ms(ev.measure.p95),
        cold_start_ms=run_level_estimate(ev.cold_start_ms),
        drift=_drift(summary),
        sustained_p95_ms=latency_estimate(sustained.p95, sustained.pooled_sorted, 0.95),
        compute_share=share,
        compute_ops=n_ops,
        fallback_ops=fallback,
        numeric=_numeric_check(summary),
        gates=tuple(GateBadge(g.gate, g.verdict, g.detail) for g in ev.gates),
        flags=tuple(dict.fromkeys(flags)),
        warnings=tuple(condition_warnings(ev, reference)),
        floors_met=not blocked,
        comparable=not (ratio is not None and (ratio.reason or "").startswith("not comparable")),
        ratio=ratio,
        throughput_per_s=1000.0 / p50.value if p50 and p50.value > 0 else None,
        tokens_per_s=tokens,
        energy=cell_energy(ev, 1000.0 / p50.value if p50 and p50.value > 0 else None),
    )


# --- columns and rows -----------------------------------------------------------------------------


def _normalise_chip(text: str) -> str:
    return " ".join(text.lower().replace("apple", " ").split())


def _node_column(run: RunEvidence, node: str, key: str, label: str) -> Column:
    facts = run.facts.get(node, {})
    chip = facts.get("chip") if isinstance(facts.get("chip"), str) else None
    info = run.nodes.get(node)
    tier = info.tier if info else None
    mismatch = bool(tier and chip and _normalise_chip(tier) != _normalise_chip(chip))
    return Column(
        key=key,
        label=label,
        node=node,
        run_id=run.run_id,
        chip=chip,
        tier=tier,
        tier_mismatch=mismatch,
        hourly_usd=info.hourly_usd if info else None,
        purchase_usd=info.purchase_usd if info else None,
        kwh_usd=_kwh_usd(run, info),
        group=chip or "unknown chip",
    )


def _kwh_usd(run: RunEvidence, info: NodeInfo | None) -> float | None:
    """The electricity price of a node: its inventory kwh_usd, else the spec's [measure] kwh_usd."""
    if info is not None and info.kwh_usd is not None:
        return info.kwh_usd
    measure = run.run.spec.get("measure") if isinstance(run.run.spec, Mapping) else None
    return _num(measure.get("kwh_usd")) if isinstance(measure, Mapping) else None


def _row_of(ev: CellEvidence, budgets: Mapping[tuple[str, str], float], node: str | None = None) -> Row:
    cell = ev.cell
    key = cell.key if node is None else f"{node}:{cell.key}"
    return Row(
        key=key,
        workload=cell.workload,
        bucket=cell.bucket,
        engine=cell.engine,
        engine_key=cell.key.rsplit("/", 1)[-1],
        config=tuple(sorted((str(k), str(v)) for k, v in cell.config.items())),
        node=node,
        budget_ms=budgets.get((cell.workload, cell.bucket)),
    )


@dataclass(frozen=True)
class _Placed:
    column: Column
    cells: dict[str, CellEvidence]
    """row key -> evidence"""


def _place_columns(runs: Sequence[RunEvidence]) -> list[_Placed]:
    seen: dict[str, int] = {}
    for run in runs:
        for node in {c.cell.node for c in run.cells}:
            seen[node] = seen.get(node, 0) + 1
    placed: list[_Placed] = []
    for run in runs:
        by_node: dict[str, dict[str, CellEvidence]] = {}
        for ev in run.cells:
            by_node.setdefault(ev.cell.node, {})[ev.cell.key] = ev
        for node, cells in by_node.items():
            several = seen[node] > 1
            key = f"{node}@{run.run_id}" if several else node
            label = f"{node} (run {run.run_id})" if several else node
            placed.append(_Placed(_node_column(run, node, key, label), cells))
    placed.sort(key=lambda p: (p.column.group or "", p.column.key))
    return placed


def _pick_baseline(placed: Sequence[_Placed], wanted: str | None) -> _Placed:
    if wanted is None:
        return placed[0]
    for p in placed:
        if wanted in (p.column.key, p.column.node):
            return p
    lowered = wanted.lower()
    by_chip = [
        p
        for p in placed
        if p.column.chip and lowered in (p.column.chip.lower(), _normalise_chip(p.column.chip))
    ]
    if not by_chip:
        by_chip = [p for p in placed if p.column.tier and p.column.tier.lower() == lowered]
    if by_chip:
        return by_chip[0]
    names = ", ".join(sorted({p.column.key for p in placed} | {p.column.chip or "" for p in placed} - {""}))
    raise CompareError(f"--baseline {wanted!r} is neither a node nor a chip of these runs (known: {names})")


def _method_note(metric: str, min_effect: float) -> str:
    if metric not in RATIO_METRICS:
        return f"{metric} is shown per cell and not tested against the baseline (one value per cell)."
    what = {
        "p50": "p50",
        "p95": "p95",
        "cold": "cold start",
        "cost": "cost per inference",
        "energy": "SoC joules per inference (net of idle)",
    }[metric]
    return (
        f"Ratios are this cell over the baseline's {what}: Welch t on the log of per-run values (the run is "
        f"the unit of replication), 95% interval; faster or slower only when the interval excludes 1 and the "
        f"change is at least {_pct(min_effect)}. Latencies in ms; intervals are run-level (single runs: "
        f"order-statistic)."
    )


def _check_metric(metric: str) -> None:
    if metric not in ("p50", "p95", "cold", "drift", "share", "cost", "energy"):
        raise CompareError(f"unknown metric {metric!r} (one of p50, p95, cold, drift, share, cost, energy)")


def soc_table(
    runs: Sequence[RunEvidence],
    *,
    baseline: str | None = None,
    metric: str = "p95",
    min_effect: float = DEFAULT_MIN_EFFECT,
    price_scale: Callable[[Column, Column], float | None] | None = None,
) -> ComparisonTable:
    """Nodes side by side (columns grouped by chip), each cell against the baseline column."""
    _check_metric(metric)
    if not runs:
        raise CompareError("no runs to compare")
    placed = _place_columns(runs)
    measured = [p for p in placed if any(ev.cell.state == "done" for ev in p.cells.values())]
    if not measured:
        ids = ", ".join(str(r.run_id) for r in runs)
        raise CompareError(f"run {ids} has no measured cells to compare")
    base = _pick_baseline(measured, baseline)
    budgets: dict[tuple[str, str], float] = {}
    for run in runs:
        budgets.update(run.budgets())
    rows: dict[str, Row] = {}
    for run in runs:
        for ev in run.cells:
            rows.setdefault(ev.cell.key, _row_of(ev, budgets))
    columns: list[Column] = []
    cells: list[Cell] = []
    warnings: list[str] = []
    incomparable = 0
    for p in placed:
        is_base = p is base
        from dataclasses import replace

        column = replace(p.column, is_baseline=is_base)
        columns.append(column)
        if column.tier_mismatch:
            warnings.append(
                f"{column.key}: inventory tier {column.tier!r} but the node reports {column.chip!r}"
            )
        for row_key, ev in p.cells.items():
            reference = None if is_base else base.cells.get(row_key)
            ratio = None
            if not is_base:
                scale: float | None = 1.0
                if metric == "cost":
                    scale = price_scale(column, base.column) if price_scale else None
                if scale is None:
                    ratio = _with_text(
                        Ratio(
                            metric=metric,
                            reference=base.column.key,
                            estimate=None,
                            min_effect=min_effect,
                            reason="no hourly_usd for this node or the baseline in the inventory",
                        ),
                        metric,
                    )
                else:
                    ratio = compare_cells(ev, reference, metric, min_effect, base.column.key, scale=scale)
                if ratio.reason and ratio.reason.startswith("not comparable"):
                    incomparable += 1
            cells.append(build_cell(ev, row_key, column.key, ratio, reference, metric))
    if incomparable:
        warnings.append(
            f"{incomparable} cell(s) not comparable with the baseline (key differs); see each cell"
        )
    comparable = [c for c in cells if c.state == "done"]
    if (
        len(columns) > 1
        and metric in RATIO_METRICS
        and not any(c.ratio is not None and c.ratio.estimate is not None for c in comparable)
    ):
        warnings.append("no cell could be compared with the baseline")
    table = ComparisonTable(
        kind="soc",
        title=f"SoC side by side: run {', '.join(str(r.run_id) for r in runs)} ({metric}, baseline "
        f"{base.column.key})",
        run_ids=tuple(r.run_id for r in runs),
        baseline=base.column.key,
        metric=metric,
        columns=tuple(columns),
        rows=tuple(rows.values()),
        cells=tuple(cells),
        min_effect=min_effect,
        notes=(_method_note(metric, min_effect),),
        warnings=tuple(warnings),
    )
    related = coreml_vs_mlx_table(runs, min_effect=min_effect)
    if related is not None:
        from dataclasses import replace

        table = replace(table, related=(related,))
    return table


# --- run vs run -------------------------------------------------------------------------------------


def run_changes(a: RunEvidence, b: RunEvidence) -> list[Change]:
    """What differs between two runs: artifacts, versions, spec contract, per-node OS and libraries."""
    changes: list[Change] = []

    def add(what: str, before: object, after: object) -> None:
        if before != after:
            changes.append(
                Change(what, None if before is None else str(before), None if after is None else str(after))
            )

    va, vb = a.run.versions or {}, b.run.versions or {}
    arts_a = va.get("artifacts") if isinstance(va.get("artifacts"), Mapping) else {}
    arts_b = vb.get("artifacts") if isinstance(vb.get("artifacts"), Mapping) else {}
    assert isinstance(arts_a, Mapping) and isinstance(arts_b, Mapping)
    for workload in sorted(set(arts_a) | set(arts_b)):
        add(f"artifact {workload}", arts_a.get(workload), arts_b.get(workload))
    for name in ("fleet_tui", "agent_sha256"):
        add(name.replace("_", " "), va.get(name), vb.get(name))
    add("input contract hash", a.run.contract_hash, b.run.contract_hash)
    add("measure settings", a.run.spec.get("measure"), b.run.spec.get("measure"))
    for node in sorted(set(a.facts) & set(b.facts)):
        fa, fb = a.facts[node], b.facts[node]
        add(f"macOS build on {node}", fa.get("os_build"), fb.get("os_build"))
        add(f"OS version on {node}", fa.get("os_version"), fb.get("os_version"))
        add(f"python on {node}", fa.get("python"), fb.get("python"))
        la = fa.get("libs") if isinstance(fa.get("libs"), Mapping) else {}
        lb = fb.get("libs") if isinstance(fb.get("libs"), Mapping) else {}
        assert isinstance(la, Mapping) and isinstance(lb, Mapping)
        for lib in sorted(set(la) | set(lb)):
            add(f"{lib} on {node}", la.get(lib), lb.get(lib))
    return changes


_ORDER = {"slower": 0, "faster": 1, "no_significant_difference": 2, "insufficient": 3}


def run_vs_run_table(
    a: RunEvidence,
    b: RunEvidence,
    *,
    metric: str = "p95",
    min_effect: float = DEFAULT_MIN_EFFECT,
    label_a: str = "",
) -> ComparisonTable:
    """Run b against run a, matched by (node, cell key): regressions first, then improvements,
    then unchanged; what changed between the runs at the top."""
    _check_metric(metric)
    col_a = Column(
        key=f"run:{a.run_id}",
        label=label_a or f"run {a.run_id}",
        node=None,
        run_id=a.run_id,
        is_baseline=True,
    )
    col_b = Column(key=f"run:{b.run_id}", label=f"run {b.run_id}", node=None, run_id=b.run_id)
    budgets = {**a.budgets(), **b.budgets()}
    in_a = {(ev.cell.node, ev.cell.key): ev for ev in a.cells}
    in_b = {(ev.cell.node, ev.cell.key): ev for ev in b.cells}
    matched = [k for k in in_b if k in in_a]
    if not any(in_a[k].cell.state == "done" and in_b[k].cell.state == "done" for k in matched):
        raise CompareError(
            f"runs {a.run_id} and {b.run_id} share no measured cell (same node, workload, bucket and engine)"
        )
    entries: list[tuple[Row, Cell, Cell | None]] = []
    for key in list(in_b) + [k for k in in_a if k not in in_b]:
        node = key[0]
        ev_b, ev_a = in_b.get(key), in_a.get(key)
        row = _row_of(ev_b or ev_a, budgets, node=node)  # type: ignore[arg-type]
        cell_a = build_cell(ev_a, row.key, col_a.key, None, None, metric) if ev_a else None
        if ev_b is None:
            assert cell_a is not None
            entries.append((row, cell_a, None))
            continue
        ratio = compare_cells(ev_b, ev_a, metric, min_effect, col_a.key)
        if ev_a is None:
            ratio = _with_text(
                Ratio(
                    metric=metric,
                    reference=col_a.key,
                    estimate=None,
                    min_effect=min_effect,
                    reason=f"not in run {a.run_id}",
                ),
                metric,
            )
        cell_b = build_cell(ev_b, row.key, col_b.key, ratio, ev_a, metric)
        entries.append((row, cell_b, cell_a))
    entries.sort(key=lambda e: _ORDER[e[1].ratio.verdict] if e[1].ratio else 4)
    rows = tuple(e[0] for e in entries)
    cells = tuple(c for e in entries for c in (e[1], e[2]) if c is not None)
    changes = run_changes(a, b)
    regressions = sum(1 for e in entries if e[1].ratio and e[1].ratio.verdict == "slower")
    improvements = sum(1 for e in entries if e[1].ratio and e[1].ratio.verdict == "faster")
    notes = (
        f"{regressions} regression(s), {improvements} improvement(s), "
        f"{len(entries) - regressions - improvements} unchanged or undecided.",
        _method_note(metric, min_effect).replace("the baseline's", f"run {a.run_id}'s"),
    )
    return ComparisonTable(
        kind="run_vs_run",
        title=f"Run {b.run_id} against {label_a or f'run {a.run_id}'} ({metric})",
        run_ids=(a.run_id, b.run_id),
        baseline=col_a.key,
        metric=metric,
        columns=(col_a, col_b),
        rows=rows,
        cells=cells,
        min_effect=min_effect,
        notes=notes,
        warnings=tuple(
            f"changed: {c.what}: {c.before} -> {c.after}" for c in changes if c.what.startswith("artifact")
        ),
        changes=tuple(changes),
    )


# --- Core ML vs MLX on the same node ----------------------------------------------------------------


def _precision(ev: CellEvidence) -> str:
    return ev.cell.config.get("dtype") or ev.cell.config.get("precision") or ""


def mlx_reference(ev: CellEvidence, cells: Sequence[CellEvidence]) -> CellEvidence | None:
    """The MLX cell a Core ML cell competes with: same bucket and node, measured; same precision
    first, then the GPU, then the lowest p95 (as the coreml_regression gate chooses)."""
    candidates = [
        o
        for o in cells
        if o.cell.engine == "mlx"
        and o.cell.node == ev.cell.node
        and o.cell.workload == ev.cell.workload
        and o.cell.bucket == ev.cell.bucket
        and o.cell.state == "done"
        and o.measure.runs
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda o: (
            _precision(o) != _precision(ev),
            o.cell.config.get("device") != "gpu",
            statistics.fmean(o.measure.p95),
        ),
    )


def _gate_threshold(run: RunEvidence) -> float:
    gates = run.run.spec.get("gates") if isinstance(run.run.spec, Mapping) else None
    value = gates.get("coreml_vs_mlx_p95") if isinstance(gates, Mapping) else None
    return (
        float(value)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else COREML_GATE_DEFAULT
    )


def coreml_vs_mlx_table(
    runs: Sequence[RunEvidence], *, min_effect: float = DEFAULT_MIN_EFFECT
) -> ComparisonTable | None:
    """Per bucket and node: the Core ML p95 over the MLX reference p95 with its interval, the gate,
    and the compute plan's placement beside it. None when the runs have no Core ML cells."""
    placed = _place_columns(runs)
    columns: list[Column] = []
    rows: dict[str, Row] = {}
    cells: list[Cell] = []
    notes: list[str] = []
    for p in placed:
        run = next(r for r in runs if r.run_id == p.column.run_id)
        budgets = run.budgets()
        threshold = _gate_threshold(run)
        coreml = [ev for ev in p.cells.values() if ev.cell.engine == "coreml"]
        if not coreml:
            continue
        columns.append(p.column)
        for ev in coreml:
            reference = mlx_reference(ev, list(p.cells.values()))
            ref_name = reference.cell.key.rsplit("/", 1)[-1] if reference else "MLX"
            ratio = compare_cells(ev, reference, "p95", min_effect, ref_name, across_engines=True)
            if reference is None:
                ratio = _with_text(
                    Ratio(
                        metric="p95",
                        reference="MLX",
                        estimate=None,
                        min_effect=min_effect,
                        reason="no measured MLX cell in this bucket on this node",
                    ),
                    "p95",
                )
            cell = build_cell(ev, ev.cell.key, p.column.key, ratio, reference, "p95")
            text = ratio.text
            if ratio.estimate is not None:
                over = ratio.estimate > threshold
                text += f"; gate {threshold:g}x {'FAILED' if over else 'passed'}"
            cpu = next((s for s in cell.compute_share if s.device == "cpu"), None)
            if cpu is not None and cpu.cost_share > 0:
                text += f"; {cpu.cost_share * 100:.0f}% of the cost fell back to CPU ({cpu.op_count} ops)"
            from dataclasses import replace

            cells.append(replace(cell, ratio=replace(ratio, text=text)))
            rows.setdefault(ev.cell.key, _row_of(ev, budgets))
        notes.append(f"{p.column.key}: gate at {threshold:g}x the MLX reference p95")
    if not columns:
        return None
    return ComparisonTable(
        kind="coreml_vs_mlx",
        title="Core ML against MLX on the same node (p95)",
        run_ids=tuple(r.run_id for r in runs),
        baseline=None,
        metric="p95",
        columns=tuple(columns),
        rows=tuple(rows.values()),
        cells=tuple(cells),
        min_effect=min_effect,
        notes=(
            "Each Core ML cell over the MLX reference of its bucket on the same node (same precision first, "
            "then the GPU); Welch on the log of per-run p95s; compute-plan placement beside it.",
            *notes,
        ),
    )
