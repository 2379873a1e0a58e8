"""Plain-text rendering of a `ComparisonTable` for the terminal (no colour, no Rich).

Every string that came from a node or the inventory (names, chips, reasons, gate details) goes
through `fleet_tui.display.clean`, so a node's control characters never reach the operator's
terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet_tui.analysis.tables import Cell, Column, ComparisonTable, Estimate, Row
from fleet_tui.display import clean


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}"


def estimate_text(e: Estimate | None, digits: int = 4) -> str:
    """ "1.234 (1.2-1.27)" or "1.234" or "-"."""
    if e is None:
        return "-"
    if e.low is None or e.high is None:
        return _num(e.value, digits)
    return f"{_num(e.value, digits)} ({_num(e.low, digits)}-{_num(e.high, digits)})"


def _grid(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    # Rows may be ragged (an unsupported cell has fewer figures than the header): pad them.
    ncols = max(len(r) for r in rows)
    rows = [[*r, *[""] * (ncols - len(r))] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(ncols)]
    lines = []
    for r in rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _share_text(cell: Cell) -> str:
    if not cell.compute_share:
        return "-"
    parts = [f"{s.device.upper()} {s.cost_share * 100:.0f}%" for s in cell.compute_share]
    ops = f" of {cell.compute_ops} ops" if cell.compute_ops is not None else ""
    return " ".join(parts) + ops


def _columns_for(metric: str, kind: str) -> list[str]:
    base = ["P50 ms (95% CI)", "P95 ms (95% CI)", "N", "RUNS"]
    if kind == "capex" or metric == "cost":
        return [*base, "THROUGHPUT /s", "$ PER MILLION", "PAYBACK mo", "P95 UPPER ms", "BUDGET"]
    extra = {
        "cold": ["COLD ms"],
        "drift": ["DRIFT x"],
        "share": ["PLACEMENT"],
        "energy": ["SoC J/INF (95% CI)", "SYS J/INF", "SoC W", "SYS W", "INF/J (SoC)", "READER"],
    }.get(metric, [])
    return [*base, *extra]


def _cell_fields(cell: Cell, metric: str, kind: str, row: Row) -> list[str]:
    if cell.state != "done":
        return [clean(f"{cell.state}: {cell.reason or ''}").rstrip(": "), "", "", ""]
    fields = [estimate_text(cell.p50_ms), estimate_text(cell.p95_ms), str(cell.n), str(cell.runs)]
    if kind == "capex" or metric == "cost":
        cost = cell.cost
        if cost is None:
            return [*fields, "-", "-", "-", "-", "-"]
        ok = {True: "ok", False: "OVER", None: "?"}[cost.meets_budget]
        budget = f"{ok} ({row.budget_ms:g})" if row.budget_ms is not None else "no budget"
        return [
            *fields,
            estimate_text(cost.throughput_per_s),
            estimate_text(cost.cost_per_million_usd, 3),
            _num(cost.payback_months, 3),
            _num(cost.p95_upper_ms),
            budget,
        ]
    if metric == "cold":
        fields.append(estimate_text(cell.cold_start_ms))
    elif metric == "drift":
        fields.append(estimate_text(cell.drift, 3))
    elif metric == "share":
        fields.append(_share_text(cell))
    elif metric == "energy":
        fields += energy_fields(cell)
    return fields


def energy_fields(cell: Cell) -> list[str]:
    """J/inference (SoC with its interval, system), average watts, perf per watt, the reader."""
    energy = cell.energy
    if energy is None:
        return ["-", "-", "-", "-", "-", "no reader"]
    if energy.status != "ok":
        return [clean(energy.status), "-", "-", "-", "-", clean(energy.reader or "-")]
    reader = f"{energy.reader} {energy.reader_version or ''}".strip() if energy.reader else "-"
    return [
        estimate_text(energy.j_per_inference, 3),
        estimate_text(energy.j_per_inference_system, 3),
        _num(energy.watts_soc, 3),
        _num(energy.watts_system, 3),
        _num(energy.perf_per_watt, 3),
        clean(reader),
    ]


def _details(cell: Cell) -> list[str]:
    lines = []
    if cell.flags:
        lines.append("flags: " + ", ".join(clean(f) for f in cell.flags))
    for w in cell.warnings:
        lines.append("warning: " + clean(w))
    failed = [g for g in cell.gates if g.verdict == "fail"]
    if cell.gates:
        passed = sum(1 for g in cell.gates if g.verdict == "pass")
        lines.append(
            f"gates: {passed} pass, {len(failed)} fail"
            + (" (" + "; ".join(clean(g.detail) for g in failed) + ")" if failed else "")
        )
    if cell.cost is not None and cell.cost.electricity_per_million_usd is not None:
        lines.append(
            f"electricity: ${_num(cell.cost.electricity_per_million_usd, 3)} per million at "
            f"${_num(cell.cost.kwh_usd, 3)}/kWh (in $ PER MILLION)"
        )
    if cell.energy is not None and cell.energy.status == "ok" and cell.energy.flags:
        lines.append("energy flags: " + ", ".join(clean(f) for f in cell.energy.flags))
    if cell.numeric is not None and cell.numeric.ok is False:
        lines.append(f"numeric drift: max_rel {_num(cell.numeric.max_rel, 3)} over tolerance")
    return lines


def _column_label(column: Column) -> str:
    label = clean(column.label)
    if column.is_baseline:
        label += " *"
    return label


def render_text(table: ComparisonTable) -> str:
    """The whole table (and its related tables) as plain text."""
    lines: list[str] = [clean(table.title), "=" * min(100, len(table.title))]
    for note in table.notes:
        lines.append(clean(note))
    for change in table.changes:
        lines.append(f"changed: {clean(change.what)}: {clean(change.before)} -> {clean(change.after)}")
    for warning in table.warnings:
        lines.append("WARNING: " + clean(warning))
    described = []
    for c in table.columns:
        facts = ", ".join(
            x
            for x in (
                f"chip {clean(c.chip)}" if c.chip else "",
                f"tier {clean(c.tier)}" if c.tier else "",
                "TIER MISMATCH" if c.tier_mismatch else "",
                f"${c.hourly_usd:g}/h" if c.hourly_usd is not None else "",
                f"${c.purchase_usd:g} to buy" if c.purchase_usd is not None else "",
            )
            if x
        )
        described.append(f"{_column_label(c)}" + (f" ({facts})" if facts else ""))
    lines.append("columns: " + "; ".join(described) + ("  (* = baseline)" if table.baseline else ""))
    columns = {c.key: c for c in table.columns}
    header = ["RUN" if table.kind == "run_vs_run" else "NODE", *_columns_for(table.metric, table.kind)]
    with_ratio = table.baseline is not None or table.kind == "coreml_vs_mlx"
    if with_ratio:
        header.append("VS MLX" if table.kind == "coreml_vs_mlx" else "VS BASELINE")
    for row in table.rows:
        lines.append("")
        title = f"{clean(row.node)}: " if row.node else ""
        title += f"{clean(row.workload)} / {clean(row.bucket)} / {clean(row.engine_key)}"
        if row.budget_ms is not None:
            title += f"   (budget p95 {row.budget_ms:g} ms)"
        lines.append(title)
        grid: list[list[str]] = [header]
        details: list[tuple[str, list[str]]] = []
        for cell in table.cells_in_row(row.key):
            column = columns.get(cell.column)
            label = _column_label(column) if column else clean(cell.column)
            fields = [label, *_cell_fields(cell, table.metric, table.kind, row)]
            if with_ratio:
                if cell.ratio is not None:
                    fields.append(clean(cell.ratio.text))
                else:
                    fields.append("baseline" if column and column.is_baseline else "-")
            grid.append(fields)
            extra = _details(cell)
            if extra:
                details.append((label, extra))
        lines += _grid(grid)
        for label, extra in details:
            for line in extra:
                lines.append(f"    {label}: {line}")
    if table.recommendations:
        lines.append("")
        lines.append("Recommendations")
        for rec in table.recommendations:
            lines.append(f"  {clean(rec.workload)}: {clean(rec.text)}")
            if rec.evidence:
                lines.append(f"    evidence: {clean(rec.evidence)}")
            if rec.would_change:
                lines.append(f"    would change it: {clean(rec.would_change)}")
    text = "\n".join(lines) + "\n"
    for related in table.related:
        text += "\n" + render_text(related)
    return text
