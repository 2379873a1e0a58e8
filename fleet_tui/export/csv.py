"""Tidy CSV: one row per (table, cell, metric), the unit in its own column and in the header.

Columns (the header names the unit wherever it is fixed): table kind, runs, the row's workload
/ bucket / engine config, the column's node / chip / tier, the cell's state, n and runs, then
``metric``, ``unit`` and ``value`` / ``ci95_low`` / ``ci95_high`` in that unit, the interval's
method, and for ratio rows the verdict. Every cell has at least its ``samples`` row, so a cell
that did not run still appears (with its state and reason). Related tables follow the main one
(their rows name their own table kind).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fleet_tui.analysis.tables import Cell, Column, ComparisonTable, Estimate, Row
from fleet_tui.export._text import all_tables

if TYPE_CHECKING:
    from fleet_tui.export.chart_data import ChartData

HEADER = (
    "table",
    "run_ids",
    "workload",
    "bucket",
    "engine",
    "engine_key",
    "row_node",
    "budget_ms",
    "column",
    "node",
    "chip",
    "tier",
    "baseline",
    "state",
    "reason",
    "n_samples",
    "runs",
    "metric",
    "unit",
    "value",
    "ci95_low",
    "ci95_high",
    "method",
    "verdict",
    "min_effect_fraction",
    "flags",
)


def render(table: ComparisonTable, charts: ChartData | None = None) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for one in all_tables(table):
        rows = {r.key: r for r in one.rows}
        columns = {c.key: c for c in one.columns}
        for cell in _ordered(one):
            row, column = rows.get(cell.row), columns.get(cell.column)
            if row is None or column is None:
                continue  # a cell outside the table's rows/columns is not shown anywhere
            base = _base(one, row, column, cell)
            for metric, unit, value, low, high, method, verdict in _metrics(one, cell):
                writer.writerow(
                    [
                        *base[:17],
                        metric,
                        unit,
                        _fmt(value),
                        _fmt(low),
                        _fmt(high),
                        method,
                        verdict,
                        _fmt(one.min_effect) if verdict else "",
                        ";".join(cell.flags),
                    ]
                )
    return buffer.getvalue().encode("utf-8")


def _ordered(table: ComparisonTable) -> Iterator[Cell]:
    for row in table.rows:
        yield from table.cells_in_row(row.key)


def _base(table: ComparisonTable, row: Row, column: Column, cell: Cell) -> list[str]:
    return [
        table.kind,
        " ".join(str(r) for r in table.run_ids),
        row.workload,
        row.bucket,
        row.engine,
        row.engine_key,
        row.node or "",
        _fmt(row.budget_ms),
        column.key,
        column.node or "",
        column.chip or "",
        column.tier or "",
        "yes" if column.is_baseline else "",
        cell.state,
        cell.reason or "",
        str(cell.n),
        str(cell.runs),
    ]


Metric = tuple[str, str, float | None, float | None, float | None, str, str]


def _estimate(metric: str, est: Estimate | None) -> Iterator[Metric]:
    if est is not None:
        yield metric, est.unit, est.value, est.low, est.high, est.method, ""


def _metrics(table: ComparisonTable, cell: Cell) -> Iterator[Metric]:
    yield "samples", "count", float(cell.n), None, None, "", ""
    yield from _estimate("p50", cell.p50_ms)
    yield from _estimate("p95", cell.p95_ms)
    yield from _estimate("cold_start", cell.cold_start_ms)
    yield from _estimate("sustained_p95", cell.sustained_p95_ms)
    yield from _estimate("drift", cell.drift)
    if cell.throughput_per_s is not None:
        yield "throughput", "1/s", cell.throughput_per_s, None, None, "", ""
    if cell.tokens_per_s is not None:
        yield "tokens_per_s", "1/s", cell.tokens_per_s, None, None, "", ""
    for share in cell.compute_share:
        yield f"share_{share.device}", "fraction", share.cost_share, None, None, "", ""
        yield f"ops_{share.device}", "count", float(share.op_count), None, None, "", ""
    if cell.compute_ops is not None:
        yield "ops_total", "count", float(cell.compute_ops), None, None, "", ""
    if cell.fallback_ops is not None:
        yield "ops_fallback", "count", float(cell.fallback_ops), None, None, "", ""
    if cell.numeric is not None and cell.numeric.max_rel is not None:
        verdict = {True: "pass", False: "fail", None: ""}[cell.numeric.ok]
        yield "numeric_max_rel", "x", cell.numeric.max_rel, None, cell.numeric.tolerance_max_rel, "", verdict
    energy = cell.energy
    if energy is not None:
        reader = " ".join(x for x in (energy.reader, energy.reader_version) if x)
        if energy.status != "ok":
            yield "energy", "status", None, None, None, reader, energy.status
        yield from _estimate("energy_j_per_inference_soc", energy.j_per_inference)
        yield from _estimate("energy_j_per_inference_system", energy.j_per_inference_system)
        for name, value, unit in (
            ("energy_watts_soc", energy.watts_soc, "W"),
            ("energy_watts_system", energy.watts_system, "W"),
            ("energy_idle_watts_soc", energy.idle_watts_soc, "W"),
            ("energy_idle_watts_system", energy.idle_watts_system, "W"),
            ("energy_perf_per_watt", energy.perf_per_watt, "1/J"),
        ):
            if value is not None:
                yield name, unit, value, None, None, reader, ""
    if cell.cost is not None:
        yield from _estimate("cost_throughput", cell.cost.throughput_per_s)
        yield from _estimate("cost_per_million", cell.cost.cost_per_million_usd)
        if cell.cost.electricity_per_million_usd is not None:
            yield "electricity_per_million", "usd", cell.cost.electricity_per_million_usd, None, None, "", ""
        if cell.cost.payback_months is not None:
            yield "payback", "months", cell.cost.payback_months, None, None, "", ""
        if cell.cost.p95_upper_ms is not None:
            meets = {True: "meets_budget", False: "over_budget", None: ""}[cell.cost.meets_budget]
            yield "sustained_p95_upper", "ms", cell.cost.p95_upper_ms, None, None, "", meets
    ratio = cell.ratio
    if ratio is not None:
        yield (
            f"ratio_{ratio.metric}",
            "x",
            ratio.estimate,
            ratio.low,
            ratio.high,
            "welch_log_runs",
            ratio.verdict,
        )
    for gate in cell.gates:
        yield f"gate_{gate.gate}", "verdict", None, None, None, "", gate.verdict


def _fmt(value: float | None) -> str:
    # repr keeps every digit: a CSV is data for another program, not a display.
    return "" if value is None else repr(float(value))
