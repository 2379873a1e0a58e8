"""Cost and capex: throughput, cost per million inferences, purchase payback, the cheapest tier.

- **Sustained throughput** of a node is single-stream, back to back: 1000 / mean latency (ms) of
  the sustained phase (the measured phase when no sustained phase ran, flagged), per run; the
  run-level interval of the mean latency carries over.
- **Cost per million inferences** = hourly_usd x mean latency (ms) / 3.6
  (a million inferences take 1e6 x latency_ms / 3.6e6 hours); its interval is the latency's.
- **Electricity**, where the node was measured with a power reader and a price is known
  (inventory ``kwh_usd``, else the spec's ``[measure] kwh_usd``): gross joules per inference (idle
  included, the whole system where the reader has it) x kwh_usd / 3.6 per million inferences,
  added to the cost per million.
- **Payback** (months) = purchase_usd / (hourly_usd x 730 h x utilisation): how long renting the
  same node at that utilisation takes to cost the purchase price.
- **Cheapest tier** per workload: among (tier, engine config) candidates, those whose *upper*
  95% bound of the sustained p95 is within every bucket's budget on every node of the tier; the
  cheapest by mean cost per million over the buckets. Otherwise "no tier meets the budget for
  bucket X (best: ...)". The recommendation states its evidence and what would change it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from fleet_tui.analysis.compare import (
    DEFAULT_MIN_EFFECT,
    CompareError,
    latency_estimate,
    run_level_estimate,
    soc_table,
)
from fleet_tui.analysis.evidence import CellEvidence, RunEvidence
from fleet_tui.analysis.tables import Cell, Column, ComparisonTable, Cost, Estimate, Recommendation

HOURS_PER_MONTH = 730.0
"""365 x 24 / 12."""
DEFAULT_UTILISATION = 1.0


def cost_per_million_usd(hourly_usd: float, latency_ms: float) -> float:
    """US dollars per million back-to-back inferences of `latency_ms` each at `hourly_usd`."""
    return hourly_usd * latency_ms / 3.6


def electricity_per_million_usd(joules_per_inference: float, kwh_usd: float) -> float:
    """US dollars of electricity per million inferences of `joules_per_inference` each
    (a million inferences use 1e6 x J / 3.6e6 kWh)."""
    return joules_per_inference * kwh_usd / 3.6


def gross_joules_per_inference(ev: CellEvidence) -> float | None:
    """Joules per inference idle included (what the meter bills): the whole system where the
    reader has it, else the SoC."""
    energy = ev.energy
    if energy is None or energy.get("status") != "ok":
        return None
    gross = energy.get("gross_j_per_inference")
    if not isinstance(gross, Mapping):
        return None
    for rail in ("system", "soc"):
        value = gross.get(rail)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def payback_months(purchase_usd: float, hourly_usd: float, utilisation: float) -> float | None:
    """Months of renting at `utilisation` (fraction of hours) that cost the purchase price."""
    monthly = hourly_usd * HOURS_PER_MONTH * utilisation
    return None if monthly <= 0 else purchase_usd / monthly


def _mean_latency_ms(ev: CellEvidence) -> Estimate | None:
    phase = ev.sustained if ev.sustained.runs else ev.measure
    return run_level_estimate([v / 1e6 for v in phase.mean])


def _sustained_p95(ev: CellEvidence) -> Estimate | None:
    phase = ev.sustained if ev.sustained.runs else ev.measure
    return latency_estimate(phase.p95, phase.pooled_sorted, 0.95)


def cell_cost(ev: CellEvidence, column: Column, budget_ms: float | None, utilisation: float) -> Cost | None:
    """The cost view of one measured cell (None when it was not measured)."""
    if ev.cell.state != "done":
        return None
    latency = _mean_latency_ms(ev)
    throughput = cost = None
    if latency is not None and latency.value > 0:
        throughput = Estimate(
            1000.0 / latency.value,
            None if latency.high is None else 1000.0 / latency.high,
            None if latency.low is None else 1000.0 / latency.low,
            "1/s",
            "propagated" if latency.low is not None else "",
        )
        if column.hourly_usd is not None:
            h = column.hourly_usd
            cost = Estimate(
                cost_per_million_usd(h, latency.value),
                None if latency.low is None else cost_per_million_usd(h, latency.low),
                None if latency.high is None else cost_per_million_usd(h, latency.high),
                "usd",
                "propagated" if latency.low is not None else "",
            )
    electricity = None
    joules = gross_joules_per_inference(ev)
    if column.kwh_usd is not None and joules is not None:
        electricity = electricity_per_million_usd(joules, column.kwh_usd)
        # Rent (when the node is rented) plus the electricity its inferences use; an owned node
        # (no hourly price) costs its electricity alone.
        if cost is None:
            cost = Estimate(electricity, unit="usd")
        else:
            cost = Estimate(
                cost.value + electricity,
                None if cost.low is None else cost.low + electricity,
                None if cost.high is None else cost.high + electricity,
                "usd",
                cost.method,
            )
    payback = None
    if column.purchase_usd is not None and column.hourly_usd:
        payback = payback_months(column.purchase_usd, column.hourly_usd, utilisation)
    p95 = _sustained_p95(ev)
    upper = p95.high if p95 is not None else None
    meets = None if budget_ms is None or upper is None else upper <= budget_ms
    return Cost(
        throughput_per_s=throughput,
        cost_per_million_usd=cost,
        payback_months=payback,
        electricity_per_million_usd=electricity,
        kwh_usd=column.kwh_usd if electricity is not None else None,
        utilisation=utilisation,
        meets_budget=meets,
        p95_upper_ms=upper,
    )


@dataclass(frozen=True)
class _Candidate:
    tier: str
    engine_key: str
    nodes: tuple[str, ...]
    by_bucket: Mapping[str, list[tuple[Cell, Cost | None]]]
    """bucket -> the (cell, cost) of each node of the tier."""

    def worst_upper(self, bucket: str) -> float | None:
        """The highest p95 upper bound over the tier's nodes (None when any node lacks one)."""
        entries = self.by_bucket.get(bucket, [])
        uppers = [c.p95_upper_ms for _, c in entries if c is not None]
        if not entries or len(uppers) < len(entries) or any(u is None for u in uppers):
            return None
        return max(u for u in uppers if u is not None)

    def worst_point(self, bucket: str) -> float | None:
        points = [
            cell.sustained_p95_ms.value for cell, _ in self.by_bucket.get(bucket, []) if cell.sustained_p95_ms
        ]
        return max(points) if points else None

    def meets(self, bucket: str, budget: float) -> bool:
        upper = self.worst_upper(bucket)
        return upper is not None and upper <= budget

    def cost(self, buckets: Sequence[str]) -> float | None:
        """Mean over buckets of the dearest node's cost per million (None when any is unpriced)."""
        values = []
        for bucket in buckets:
            costs = [
                c.cost_per_million_usd.value
                for _, c in self.by_bucket.get(bucket, [])
                if c and c.cost_per_million_usd
            ]
            if not costs or len(costs) < len(self.by_bucket.get(bucket, [])):
                return None
            values.append(max(costs))
        return sum(values) / len(values) if values else None

    @property
    def label(self) -> str:
        return f"{self.tier} with {self.engine_key}"


def _evidence_text(candidate: _Candidate, buckets: Sequence[str]) -> str:
    cells = [cell for b in buckets for cell, _ in candidate.by_bucket.get(b, [])]
    runs = sorted({cell.runs for cell in cells})
    samples = sum(cell.n for cell in cells)
    flags = sorted({f for cell in cells for f in cell.flags})
    run_text = "/".join(str(r) for r in runs) or "0"
    return (
        f"{len(cells)} cell(s) on {', '.join(candidate.nodes)}: {run_text} run(s) each, {samples} samples; "
        f"flags: {', '.join(flags) if flags else 'none'}"
    )


def recommend(
    workload: str, budgets: Mapping[str, float], candidates: Sequence[_Candidate]
) -> Recommendation:
    """The cheapest (tier, engine) meeting every bucket's budget on the upper bound, or why none does."""
    buckets = sorted(budgets)
    meeting = [c for c in candidates if all(c.meets(b, budgets[b]) for b in buckets)]
    excluded_by_bound = [
        (c, b)
        for c in candidates
        for b in buckets
        if not c.meets(b, budgets[b]) and (c.worst_point(b) or math.inf) <= budgets[b]
    ]
    caveats = [
        f"{c.label} is excluded only by the upper bound on bucket {b} (p95 {c.worst_point(b):.3g} ms within "
        f"{budgets[b]:g} ms, upper bound {_fmt(c.worst_upper(b))}); more runs could admit it"
        for c, b in excluded_by_bound
    ]
    if not meeting:

        def met_by(bucket: str) -> int:
            return sum(1 for c in candidates if c.meets(bucket, budgets[bucket]))

        bucket = min(buckets, key=lambda b: (met_by(b), b))
        ranked = sorted(candidates, key=lambda c: c.worst_upper(bucket) or math.inf)
        best = ranked[0] if ranked else None
        best_text = (
            f"best: {best.label}, p95 upper bound {_fmt(best.worst_upper(bucket))} > {budgets[bucket]:g} ms"
            if best
            else "no measured candidate"
        )
        if met_by(bucket) == 0:
            text = f"no tier meets the budget for bucket {bucket} ({best_text})"
        else:
            text = (
                f"no single tier and engine meets every bucket's budget "
                f"(bucket {bucket} is the hardest; {best_text})"
            )
        return Recommendation(
            workload=workload,
            tier=None,
            text=text,
            evidence=_evidence_text(best, buckets) if best else "no measured cells",
            would_change="; ".join(caveats) or "a faster tier or engine, or a looser budget for that bucket",
        )

    def rank(c: _Candidate) -> tuple[bool, float]:
        cost = c.cost(buckets)
        return cost is None, cost if cost is not None else 0.0

    meeting.sort(key=rank)
    chosen = meeting[0]
    cost = chosen.cost(buckets)
    margins = []
    for b in buckets:
        upper = chosen.worst_upper(b)
        assert upper is not None
        margins.append((1 - upper / budgets[b] if budgets[b] > 0 else 0.0, b, upper))
    margins.sort()
    tight = margins[0]
    would = [
        f"bucket {tight[1]} is the tightest: upper bound {tight[2]:.3g} ms, "
        f"{tight[0] * 100:.0f}% under budget"
    ]
    if len(meeting) > 1:
        other = meeting[1]
        other_cost = other.cost(buckets)
        if cost and other_cost:
            would.append(
                f"runner-up {other.label} costs {_usd(other_cost)} per million "
                f"({(other_cost / cost - 1) * 100:+.0f}%)"
            )
        else:
            would.append(f"runner-up {other.label}")
    would += caveats
    price = (
        f" at {_usd(cost)} per million inferences" if cost is not None else " (no hourly price to rank by)"
    )
    return Recommendation(
        workload=workload,
        tier=chosen.tier,
        nodes=chosen.nodes,
        engine_key=chosen.engine_key,
        cost_per_million_usd=cost,
        text=f"{chosen.label} meets every bucket's budget on the upper bound of the sustained p95{price}",
        evidence=_evidence_text(chosen, buckets),
        would_change="; ".join(would),
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g} ms"


def _usd(value: float) -> str:
    return f"${value:.3g}"


def add_costs(table: ComparisonTable, runs: Sequence[RunEvidence], utilisation: float) -> ComparisonTable:
    """The table with every measured cell's `cost` filled in."""
    evidence = {(ev.run_id, ev.cell.id): ev for run in runs for ev in run.cells}
    columns = {c.key: c for c in table.columns}
    rows = {r.key: r for r in table.rows}
    cells = []
    for cell in table.cells:
        ev = evidence.get((cell.run_id or -1, cell.cell_id or -1))
        column, row = columns.get(cell.column), rows.get(cell.row)
        if ev is None or column is None or row is None:
            cells.append(cell)
            continue
        cells.append(replace(cell, cost=cell_cost(ev, column, row.budget_ms, utilisation)))
    return replace(table, cells=tuple(cells), utilisation=utilisation)


def capex_table(
    runs: Sequence[RunEvidence],
    *,
    utilisation: float = DEFAULT_UTILISATION,
    min_effect: float = DEFAULT_MIN_EFFECT,
) -> ComparisonTable:
    """The capex summary: every cell's cost view, and one recommendation per workload."""
    if not 0.0 < utilisation <= 1.0:
        raise CompareError(f"utilisation must be in (0, 1], got {utilisation:g}")
    base = soc_table(runs, metric="cost", min_effect=min_effect, price_scale=price_scale)
    table = add_costs(base, runs, utilisation)
    columns = {c.key: c for c in table.columns}
    rows = {r.key: r for r in table.rows}
    recommendations: list[Recommendation] = []
    for workload in dict.fromkeys(r.workload for r in table.rows):
        budgets = {
            r.bucket: r.budget_ms for r in table.rows if r.workload == workload and r.budget_ms is not None
        }
        if not budgets:
            recommendations.append(
                Recommendation(workload=workload, tier=None, text=f"no budgets for {workload} in the spec")
            )
            continue
        groups: dict[tuple[str, str], dict[str, list[tuple[Cell, Cost | None]]]] = {}
        tier_nodes: dict[str, set[str]] = {}
        for cell in table.cells:
            row, column = rows[cell.row], columns[cell.column]
            if row.workload != workload or cell.state != "done" or row.bucket not in budgets:
                continue
            tier = column.tier or column.node or column.key
            tier_nodes.setdefault(tier, set()).add(column.node or column.key)
            groups.setdefault((tier, row.engine_key), {}).setdefault(row.bucket, []).append((cell, cell.cost))
        candidates = [
            _Candidate(tier, engine, tuple(sorted(tier_nodes[tier])), by_bucket)
            for (tier, engine), by_bucket in groups.items()
        ]
        # A tier must meet on every one of its nodes: a node of the tier without the cell fails it.
        for candidate in candidates:
            for entries in candidate.by_bucket.values():
                if len(entries) < len(candidate.nodes):
                    entries.append((entries[0][0], None))
        recommendations.append(recommend(workload, budgets, candidates))
    notes = (
        f"Cost per million inferences = hourly price x mean sustained latency (ms) / 3.6, interval from the "
        f"latency's; payback = purchase / (hourly x {HOURS_PER_MONTH:g} h x utilisation {utilisation:g}); "
        f"budgets judged on the upper 95% bound of the sustained p95 on every node of a tier.",
        *(
            (
                "Electricity is added where a node was measured with a power reader and has a kWh price: "
                "gross joules per inference (idle included; the whole system where the reader has it) "
                "x kwh_usd / 3.6 per million inferences.",
            )
            if any(c.cost is not None and c.cost.electricity_per_million_usd is not None for c in table.cells)
            else ()
        ),
        *table.notes,
    )
    return replace(
        table,
        kind="capex",
        title=f"Cost and capex: run {', '.join(str(r) for r in table.run_ids)} (utilisation {utilisation:g})",
        notes=notes,
        recommendations=tuple(recommendations),
        related=(),
    )


def price_scale(column: Column, baseline: Column) -> float | None:
    """This column's hourly price over the baseline's (None when either is missing)."""
    if column.hourly_usd is None or not baseline.hourly_usd:
        return None
    return column.hourly_usd / baseline.hourly_usd
