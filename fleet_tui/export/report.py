"""The files a run's report is made of, for every front end: the comparison table with its cost
table appended (the HTML report's cost chart) and the exports and charts a bundle carries.

The CLI and the TUI both call this, so a bundle written from either holds the same files.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet_tui.analysis.tables import ComparisonTable
    from fleet_tui.store import Store

BUNDLE_TABLE_FORMATS = ("csv", "md", "json")


def with_capex(store: Store, table: ComparisonTable, utilisation: float) -> ComparisonTable:
    """A side-by-side table with the capex table of its runs appended, when the capex view can be
    built (nodes with prices); any other table unchanged."""
    from fleet_tui.analysis.capex import capex_table
    from fleet_tui.analysis.compare import CompareError
    from fleet_tui.analysis.evidence import load_run

    if table.kind != "soc" or any(t.kind == "capex" for t in table.related):
        return table
    try:
        capex = capex_table([load_run(store, run_id) for run_id in table.run_ids], utilisation=utilisation)
    except CompareError:
        return table
    return dataclasses.replace(table, related=(*table.related, capex))


def run_report_table(store: Store, run_id: int, *, utilisation: float = 1.0) -> ComparisonTable:
    """The default side by side of one run (p95, no baseline) with its capex table: what
    `fleet-tui compare RUN --format html` reports. CompareError when nothing is comparable."""
    from fleet_tui.analysis.capex import price_scale
    from fleet_tui.analysis.compare import soc_table
    from fleet_tui.analysis.evidence import load_run

    table = soc_table([load_run(store, run_id)], price_scale=price_scale)
    return with_capex(store, table, utilisation)


def report_files(store: Store, run_id: int) -> dict[str, bytes]:
    """exports/ and charts/ of a run's bundle (path -> bytes). CompareError when the run has
    nothing to compare."""
    from fleet_tui.export import render
    from fleet_tui.export.chart_data import chart_data
    from fleet_tui.export.html import report

    table = run_report_table(store, run_id)
    files = {f"exports/table.{fmt}": render(table, fmt) for fmt in BUNDLE_TABLE_FORMATS}
    files["exports/report.html"], svgs = report(table, chart_data(store, table))
    for ident, svg in svgs.items():
        files[f"charts/{ident}.svg"] = svg.encode("utf-8")
    return files
