"""Number and cell text shared by the Markdown and HTML exports (plain text, no markup).

Every figure printed comes from the table model unchanged; these helpers only choose digits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from fleet_tui.analysis.tables import Cell, ComparisonTable, Estimate, Ratio

VERDICT_TEXT = {
    "faster": "faster",
    "slower": "slower",
    "no_significant_difference": "no significant difference",
    "insufficient": "insufficient data",
}


def num(value: float | None, unit: str = "") -> str:
    """Four significant digits (no exponent for everyday magnitudes); "n/a" for None/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{text} {unit}".rstrip() if unit and unit != "x" else (text + ("x" if unit == "x" else ""))


def interval(low: float | None, high: float | None, unit: str = "") -> str:
    if low is None or high is None:
        return ""
    return f"[{num(low)}, {num(high)}]" + (f" {unit}" if unit and unit != "x" else "")


def estimate(est: Estimate | None) -> str:
    """ "1.234 ms [1.2, 1.27]"; "n/a" without a value."""
    if est is None:
        return "n/a"
    text = num(est.value, est.unit)
    span = interval(est.low, est.high)
    return f"{text} {span}" if span else text


def ratio(r: Ratio | None) -> str:
    """The ratio's own sentence when it has one, else the figures and the verdict."""
    if r is None:
        return ""
    if r.text:
        return r.text
    if r.estimate is None:
        return VERDICT_TEXT[r.verdict] + (f" ({r.reason})" if r.reason else "")
    span = interval(r.low, r.high)
    return f"{num(r.estimate, 'x')} {span} {VERDICT_TEXT[r.verdict]}".replace("  ", " ")


def cell_lines(cell: Cell) -> Iterator[str]:
    """The lines of one table cell, most important first."""
    if cell.state != "done":
        yield cell.state + (f": {cell.reason}" if cell.reason else "")
    if cell.p50_ms is not None:
        yield f"p50 {estimate(cell.p50_ms)}"
    if cell.p95_ms is not None:
        yield f"p95 {estimate(cell.p95_ms)}"
    if cell.ratio is not None:
        yield f"{cell.ratio.metric} ratio {ratio(cell.ratio)}"
    if cell.cold_start_ms is not None:
        yield f"cold {estimate(cell.cold_start_ms)}"
    if cell.drift is not None:
        yield f"drift {estimate(cell.drift)}"
    if cell.compute_share:
        shares = " ".join(f"{s.device} {s.cost_share:.0%} ({s.op_count} ops)" for s in cell.compute_share)
        yield f"plan {shares}"
    yield from energy_lines(cell)
    if cell.cost is not None and cell.cost.cost_per_million_usd is not None:
        yield f"${estimate(cell.cost.cost_per_million_usd).replace(' usd', '')} per million"
        if cell.cost.electricity_per_million_usd is not None:
            yield (
                f"of which electricity ${num(cell.cost.electricity_per_million_usd)} "
                f"at ${num(cell.cost.kwh_usd)}/kWh"
            )
    if cell.numeric is not None and cell.numeric.ok is False:
        yield "numeric check FAILED"
    failed = [g.gate for g in cell.gates if g.verdict == "fail"]
    if failed:
        yield "gate failed: " + ", ".join(failed)
    if cell.n:
        yield f"n={cell.n}, runs={cell.runs}"
    if cell.flags:
        yield "flags: " + ", ".join(cell.flags)
    for warning in cell.warnings:
        yield "warning: " + warning


def energy_lines(cell: Cell) -> Iterator[str]:
    """A cell's energy: J/inference (SoC with its interval, system), watts, perf/W, the reader."""
    energy = cell.energy
    if energy is None:
        return
    reader = " ".join(x for x in (energy.reader, energy.reader_version) if x) or "no reader"
    if energy.status != "ok":
        yield f"energy: {energy.status} ({reader})"
        return
    if energy.j_per_inference is not None:
        yield f"SoC {estimate(energy.j_per_inference)} per inference"
    if energy.j_per_inference_system is not None:
        yield f"system {estimate(energy.j_per_inference_system)} per inference"
    watts = f"{num(energy.watts_soc, 'W')} SoC" + (
        f", {num(energy.watts_system, 'W')} system" if energy.watts_system is not None else ""
    )
    yield watts + (f", {num(energy.perf_per_watt)} inf/J" if energy.perf_per_watt is not None else "")
    yield f"energy by {reader}"


def header(table: ComparisonTable) -> Iterator[str]:
    """The sentences printed above a table: runs, baseline, metric, notes, warnings."""
    runs = ", ".join(str(r) for r in table.run_ids)
    yield f"runs {runs}; metric {table.metric}; baseline {table.baseline or 'none'}; " + (
        f"minimum effect {table.min_effect:.0%}; {table.confidence:.0%} intervals"
    )
    yield from table.notes
    for warning in table.warnings:
        yield "warning: " + warning


def column_label(table: ComparisonTable, key: str) -> str:
    for column in table.columns:
        if column.key == key:
            return column.label
    return key


def all_tables(table: ComparisonTable) -> Iterator[ComparisonTable]:
    """The table and its related tables, depth first."""
    yield table
    for related in table.related:
        yield from all_tables(related)
