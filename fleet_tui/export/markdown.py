"""Markdown for a decision document: GitHub tables (rows = workload / bucket / engine config,
columns = nodes or runs), then gate failures, recommendations and related tables.

Cell text is `_text.cell_lines` joined with ``<br>`` (GitHub renders it inside a table cell);
pipes and newlines in names are escaped so a node name cannot break the table, and every string
goes through `fleet_tui.display.clean` so a node's control characters never reach the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleet_tui.analysis.tables import ComparisonTable
from fleet_tui.display import MAX_DOCUMENT_FIELD, clean
from fleet_tui.export._text import cell_lines, column_label, header

if TYPE_CHECKING:
    from fleet_tui.export.chart_data import ChartData


def render(table: ComparisonTable, charts: ChartData | None = None) -> bytes:
    return "\n".join(_table(table, level=2)).encode("utf-8")


def escape(text: str) -> str:
    """Text safe inside a GitHub table cell (and outside one), a node's control characters
    escaped (`fleet_tui.display.clean`)."""
    one_line = text.replace("\r", " ").replace("\n", " ")
    return (
        clean(one_line, MAX_DOCUMENT_FIELD)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def _table(table: ComparisonTable, level: int) -> list[str]:
    out = [f"{'#' * level} {escape(table.title)}", ""]
    out += [f"- {escape(line)}" for line in header(table)]
    if table.changes:
        out += ["", "What changed between the runs:", ""]
        out += [
            f"- {escape(c.what)}: {escape(c.before or 'absent')} -> {escape(c.after or 'absent')}"
            for c in table.changes
        ]
    out.append("")
    labels = []
    for column in table.columns:
        label = column.label
        extras = [x for x in (column.chip, f"tier {column.tier}" if column.tier else None) if x]
        if column.tier_mismatch:
            extras.append("tier mismatch")
        if column.is_baseline:
            extras.append("baseline")
        labels.append(escape(label) + (f"<br>{escape(', '.join(extras))}" if extras else ""))
    out.append("| workload / bucket | engine | " + " | ".join(labels) + " |")
    out.append("|---|---|" + "---|" * len(table.columns))
    for row in table.rows:
        where = f"{row.workload}/{row.bucket}" + (f" on {row.node}" if row.node else "")
        if row.budget_ms is not None:
            where += f" (budget {row.budget_ms:g} ms)"
        texts = []
        for column in table.columns:
            cell = table.cell(row.key, column.key)
            texts.append("—" if cell is None else "<br>".join(escape(line) for line in cell_lines(cell)))
        out.append(f"| {escape(where)} | {escape(row.engine_key)} | " + " | ".join(texts) + " |")
    failures = [(cell, gate) for cell in table.cells for gate in cell.gates if gate.verdict == "fail"]
    if failures:
        out += ["", "Gate failures:", ""]
        out += [
            f"- {escape(gate.gate)} ({escape(column_label(table, cell.column))}): {escape(gate.detail)}"
            for cell, gate in failures
        ]
    if table.recommendations:
        out += ["", "Recommendations:", ""]
        for rec in table.recommendations:
            out.append(f"- **{escape(rec.workload)}**: {escape(rec.text)}")
            if rec.evidence:
                out.append(f"  - evidence: {escape(rec.evidence)}")
            if rec.would_change:
                out.append(f"  - would change it: {escape(rec.would_change)}")
    out.append("")
    for related in table.related:
        out += _table(related, level + 1)
    return out
