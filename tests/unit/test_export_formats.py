"""Exports of the one table model: golden files for every format from the fixed stored run
(tests/export_fixture.py), and checks that each format carries exactly the model's figures.

Regenerate the goldens after an intended change of the table or a renderer with
``FLEET_TUI_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_export_formats.py`` and
review the diff.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
from collections.abc import Iterator
from pathlib import Path

import export_fixture
import pytest

from fleet_tui.analysis.tables import ComparisonTable
from fleet_tui.cli.exports import report_table, table_for_run
from fleet_tui.export import FORMATS, ExportError, format_for_path, format_named, render
from fleet_tui.export.chart_data import ChartData, chart_data
from fleet_tui.export.json import SCHEMA

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("FLEET_TUI_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ComparisonTable, ChartData]]:
    fx = export_fixture.build(tmp_path_factory.mktemp("export") / "fleet.db")
    with fx.store:
        table = report_table(fx.store, fx.run_id)
        yield table, chart_data(fx.store, table)


def normalise_html(text: str) -> str:
    """The report without its SVG drawings (they belong to matplotlib's version, not to us):
    each ``<svg ...>...</svg>`` becomes ``<svg/>``; everything else is compared as is."""
    return re.sub(r"<svg\b.*?</svg>", "<svg/>", text, flags=re.S)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        if not UPDATE and os.environ.get("CI"):
            pytest.fail(f"golden file {path.name} is missing (generate it with FLEET_TUI_UPDATE_GOLDEN=1)")
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from its golden file (FLEET_TUI_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("fmt", ["csv", "md", "json", "html"])
def test_every_format_matches_its_golden_file(
    fmt: str, fixture_run: tuple[ComparisonTable, ChartData]
) -> None:
    table, charts = fixture_run
    data = render(table, fmt, charts).decode("utf-8")
    assert render(table, fmt, charts).decode("utf-8") == data  # deterministic
    check_golden(f"export_table.{fmt}", normalise_html(data) if fmt == "html" else data)


def test_registry_names_suffixes_and_errors() -> None:
    assert list(FORMATS) == ["csv", "md", "json", "html"]
    assert format_named("markdown").name == "md"
    assert format_named("HTML").name == "html"
    assert format_for_path("out/report.html") is FORMATS["html"]
    assert format_for_path("t.MD") is FORMATS["md"]
    assert format_for_path("t.xlsx") is None
    with pytest.raises(ExportError, match=r"unknown export format 'xlsx' \(one of: csv, md, json, html\)"):
        format_named("xlsx")


def test_csv_is_tidy_and_carries_the_models_numbers(fixture_run: tuple[ComparisonTable, ChartData]) -> None:
    table, _ = fixture_run
    rows = list(csv.DictReader(io.StringIO(render(table, "csv").decode())))
    main = [r for r in rows if r["table"] == table.kind]
    # Every cell of the model has a samples row; every row is one metric of one cell.
    row_by_key = {row.key: row for row in table.rows}
    model_cells = {(c.column, row_by_key[c.row].engine_key, row_by_key[c.row].bucket) for c in table.cells}
    assert {
        (r["column"], r["engine_key"], r["bucket"]) for r in main if r["metric"] == "samples"
    } == model_cells
    keys = [
        (r["table"], r["row_node"], r["workload"], r["bucket"], r["engine_key"], r["column"], r["metric"])
        for r in rows
    ]
    assert len(keys) == len(set(keys)), "a (cell, metric) pair appears twice"
    assert all(r["unit"] for r in rows)
    by_cell = {(r["column"], r["engine_key"], r["bucket"], r["metric"]): r for r in main}
    checked = 0
    for cell in table.cells:
        row = row_by_key[cell.row]
        assert by_cell[(cell.column, row.engine_key, row.bucket, "samples")]["value"] == repr(float(cell.n))
        if cell.p95_ms is not None:
            line = by_cell[(cell.column, row.engine_key, row.bucket, "p95")]
            assert (line["unit"], float(line["value"])) == ("ms", cell.p95_ms.value)
            assert float(line["ci95_high"]) == cell.p95_ms.high
            checked += 1
        if cell.ratio is not None and cell.ratio.estimate is not None:
            line = by_cell[(cell.column, row.engine_key, row.bucket, f"ratio_{cell.ratio.metric}")]
            assert (float(line["value"]), line["verdict"]) == (cell.ratio.estimate, cell.ratio.verdict)
    assert checked == len([c for c in table.cells if c.p95_ms is not None]) > 0
    assert "budget_ms" in rows[0] and "min_effect_fraction" in rows[0]


def test_json_has_its_schema_and_the_models_fields(fixture_run: tuple[ComparisonTable, ChartData]) -> None:
    table, _ = fixture_run
    doc = json.loads(render(table, "json"))
    assert doc["schema"] == SCHEMA == "fleet-tui.table/1"
    assert doc["table_model_version"] == table.schema
    assert [c["key"] for c in doc["table"]["columns"]] == [c.key for c in table.columns]
    first = next(c for c in table.cells if c.p50_ms is not None)
    stored = next(c for c in doc["table"]["cells"] if c["row"] == first.row and c["column"] == first.column)
    assert first.p50_ms is not None
    assert stored["p50_ms"]["value"] == first.p50_ms.value
    assert stored["p50_ms"]["unit"] == "ms"
    assert len(doc["table"]["related"]) == len(table.related)


def test_markdown_is_one_github_table_row_per_model_row(
    fixture_run: tuple[ComparisonTable, ChartData],
) -> None:
    table, _ = fixture_run
    text = render(table, "md").decode()
    section = text.split("\n## ", 1)[0] if text.startswith("## ") else text
    main = section.split("\n### ", 1)[0]
    lines = [line for line in main.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(table.rows)  # header + one per row (the separator starts "|---")
    assert all(line.count(" | ") >= 1 + len(table.columns) for line in lines)
    for column in table.columns:
        assert column.label in lines[0]


def test_markdown_escapes_what_would_break_a_table() -> None:
    from fleet_tui.export.markdown import escape

    assert escape("a|b\nc<d>") == "a\\|b c&lt;d&gt;"


def test_html_is_offline_and_self_contained(fixture_run: tuple[ComparisonTable, ChartData]) -> None:
    table, charts = fixture_run
    text = render(table, "html", charts).decode()
    assert text.startswith("<!DOCTYPE html>")
    # Nothing is fetched: no external src/href, no script but the inert JSON data block.
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text)
    assert re.findall(r"<script\b[^>]*>", text) == ['<script type="application/json" id="table-data">']
    kinds = re.findall(r'<figure class="chart" data-chart="([\w-]+)"', text)
    assert {"latency-distribution", "p95-ci", "sustained", "cost-per-million"} <= set(kinds)
    buckets = {(r.workload, r.bucket) for r in table.rows}
    assert kinds.count("p95-ci") == kinds.count("latency-distribution") == len(buckets)
    assert kinds.count("sustained") == len(table.columns)
    embedded = re.search(r'id="table-data">(.*?)</script>', text, flags=re.S)
    assert embedded is not None and json.loads(embedded.group(1))["schema"] == SCHEMA


def test_html_without_chart_data_says_what_is_left_out(
    fixture_run: tuple[ComparisonTable, ChartData],
) -> None:
    table, _ = fixture_run
    text = render(table, "html").decode()
    assert "distribution and sustained charts are left out" in text
    assert 'data-chart="latency-distribution"' not in text
    assert 'data-chart="p95-ci"' in text  # drawn from the table alone


def test_sustained_chart_data_has_the_thermal_bands(fixture_run: tuple[ComparisonTable, ChartData]) -> None:
    _, charts = fixture_run
    # The fixture's M4 turns "fair" half-way through every sustained run; the others stay nominal.
    m4 = [s for s in charts.sustained if s.column == "m4-a"]
    others = [s for s in charts.sustained if s.column != "m4-a"]
    assert m4 and others
    assert all({b.state for b in s.bands} == {"nominal", "fair"} for s in m4)
    assert all({b.state for b in s.bands} == {"nominal"} for s in others)
    for s in charts.sustained:
        assert s.sustained_from_s is not None and 0 < s.sustained_from_s < s.t_s[-1]
        assert all(b.start_s <= b.end_s for b in s.bands)
        assert len(s.t_s) == len(s.p50_ms) == len(s.p95_ms) > 10
    assert all(
        len(d.quantiles_ms) == 101 and list(d.quantiles_ms) == sorted(d.quantiles_ms)
        for d in charts.distributions
    )


def test_export_table_is_the_compare_table(tmp_path: Path) -> None:
    """`export RUN` renders the builder `compare RUN` uses: the same cells for the same options."""
    fx = export_fixture.build(tmp_path / "fleet.db", nodes=export_fixture.NODES[:2], runs=2)
    with fx.store:
        import argparse

        from fleet_tui.cli.compare import build_compare

        args = argparse.Namespace(
            runs=[str(fx.run_id)],
            baseline="m2pro-a",
            metric="p50",
            min_effect=0.05,
            against=None,
            utilisation=1.0,
        )
        compare_table, _ = build_compare(fx.store, args)
        export_table = table_for_run(fx.store, fx.run_id, baseline="m2pro-a", metric="p50", min_effect=0.05)
    assert render(export_table, "json") == render(compare_table, "json")
    assert export_table.baseline == "m2pro-a" and export_table.metric == "p50"


def test_compare_html_has_every_chart_and_equals_export_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compare --format html` and `export --format html` write the same report, with the chart
    data from the store (distributions, sustained series) and the capex table (cost chart)."""
    from fleet_tui.cli import main

    fx = export_fixture.build(tmp_path / "fleet.db", nodes=export_fixture.NODES[:2], runs=2)
    fx.store.close()
    db = str(tmp_path / "fleet.db")
    compared, exported = tmp_path / "compare.html", tmp_path / "export.html"
    assert main(["compare", "1", "--db", db, "--format", "html", "--output", str(compared)]) == 0
    assert main(["export", "1", "--db", db, "--format", "html", "--output", str(exported)]) == 0
    capsys.readouterr()
    text = compared.read_text(encoding="utf-8")
    for kind in ("latency-distribution", "p95-ci", "sustained", "cost-per-million"):
        assert f'data-chart="{kind}"' in text, kind
    assert "charts are left out" not in text
    assert normalise_html(text) == normalise_html(exported.read_text(encoding="utf-8"))


def test_micro_op_cells_are_read_per_call(fixture_run: tuple[ComparisonTable, ChartData]) -> None:
    """The fixture's numpy b1 cells store elapsed times of MICRO_LOOPS calls: the table and the
    charts show per-call times, on the same scale as the stored (agent's) summary."""
    table, charts = fixture_run
    row = "mlp/b1/numpy:fp64"
    cell = table.cell(row, "m1-a")
    assert cell is not None and cell.p50_ms is not None
    # 1.6 ms per call on the M1 (ENGINE_MS), not 4 x 1.6 ms.
    assert cell.p50_ms.value == pytest.approx(export_fixture.ENGINE_MS["numpy"], rel=0.05)
    distribution = next(d for d in charts.distributions if d.row == row and d.column == "m1-a")
    assert distribution.quantiles_ms[50] == pytest.approx(cell.p50_ms.value, rel=0.05)
    series = next(s for s in charts.sustained if s.row == row and s.column == "m1-a")
    assert statistics.median(series.p50_ms) == pytest.approx(cell.p50_ms.value, rel=0.1)


# --- energy ---------------------------------------------------------------------------------------


def test_every_format_carries_the_energy_figures_when_present(tmp_path: Path) -> None:
    from compare_fixture import build, facts, lognormal_runs
    from numpy.random import default_rng

    from fleet_tui.analysis.compare import soc_table
    from fleet_tui.analysis.evidence import load_run
    from fleet_tui.config.inventory import Node

    rng = default_rng(5)
    energy = {
        "status": "ok",
        "reader": {"name": "macmon", "version": "0.6.1", "interval_ms": 100},
        "window": "measure",
        "j_per_inference": {"soc": {"estimate": 0.25, "values": [0.24, 0.25, 0.26, 0.25, 0.25]}},
        "avg_watts": {"soc": 7.5, "system": 17.5},
        "idle_watts": {"soc": 0.6},
        "flags": [],
    }
    nodes = [Node(name="a", host="h", tier="M2")]
    store, run = build(
        tmp_path / "s.db",
        nodes,
        lambda node, key: lognormal_runs(rng, 2.0),
        node_facts={"a": facts("a")},
        extra=lambda node, key: {"energy": energy, "power_reader": "macmon"},
    )
    with store:
        table = soc_table([load_run(store, run)], metric="energy")
    rows = list(csv.DictReader(io.StringIO(render(table, "csv").decode())))
    soc = [r for r in rows if r["metric"] == "energy_j_per_inference_soc"]
    assert soc and soc[0]["unit"] == "J" and float(soc[0]["ci95_low"]) < 0.25 < float(soc[0]["ci95_high"])
    assert [float(r["value"]) for r in rows if r["metric"] == "energy_watts_system"] == [17.5, 17.5]
    markdown = render(table, "md").decode()
    assert (
        "J [" in markdown
        and "per inference" in markdown
        and "7.5 W SoC" in markdown
        and "energy by macmon 0.6.1" in markdown
    )
    cells = json.loads(render(table, "json"))["table"]["cells"]
    assert {c["energy"]["reader"] for c in cells} == {"macmon"}
    report = render(table, "html").decode()
    assert "energy by macmon" in report and 'data-chart="energy-per-inference"' in report
