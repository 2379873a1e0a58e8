"""The table model every renderer draws from: lookups, ordering, stability rules."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from fleet_tui.analysis import tables
from fleet_tui.analysis.tables import Cell, Column, ComparisonTable, Estimate, Ratio, Row

SOURCE = Path(tables.__file__)


def _table() -> ComparisonTable:
    columns = (
        Column(key="a", label="a", node="a", run_id=1, is_baseline=True),
        Column(key="b", label="b", node="b", run_id=1),
    )
    rows = (Row(key="w/b1/e", workload="w", bucket="b1", engine="numpy", engine_key="e"),)
    slower = Ratio(metric="p95", reference="a", estimate=1.2, low=1.1, high=1.3, verdict="slower")
    cells = (
        Cell(row="w/b1/e", column="b", state="done", p95_ms=Estimate(1.2, 1.1, 1.3), ratio=slower),
        Cell(row="w/b1/e", column="a", state="done", p95_ms=Estimate(1.0, 0.9, 1.1)),
    )
    return ComparisonTable(
        kind="soc",
        title="t",
        run_ids=(1,),
        baseline="a",
        metric="p95",
        columns=columns,
        rows=rows,
        cells=cells,
    )


def test_lookups_follow_column_order() -> None:
    table = _table()
    assert table.cell("w/b1/e", "a") is table.cells[1]
    assert table.cell("w/b1/e", "zz") is None
    assert [c.column for c in table.cells_in_row("w/b1/e")] == ["a", "b"]
    assert [c.column for c in table.regressions] == ["b"]


def test_the_model_is_frozen_and_plain_data() -> None:
    table = _table()
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.title = "x"  # type: ignore[misc]
    # Plain data: a renderer can serialise it without custom encoders.
    data = dataclasses.asdict(table)
    assert json.loads(json.dumps(data))["cells"][0]["ratio"]["verdict"] == "slower"
    assert data["schema"] == tables.TABLE_MODEL_VERSION


def test_every_field_is_documented() -> None:
    """Renderers outside the package rely on these names: every field is documented (with its
    unit) right below its declaration, except a few self-describing names."""
    obvious = {"title", "columns", "rows", "workload", "bucket", "label"}
    tree = ast.parse(SOURCE.read_text())
    missing = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for i, item in enumerate(body):
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                name = item.target.id
                documented = (
                    i + 1 < len(body)
                    and isinstance(body[i + 1], ast.Expr)
                    and isinstance(body[i + 1].value, ast.Constant)  # type: ignore[attr-defined]
                )
                if not documented and name not in obvious:
                    missing.append(f"{node.name}.{name}")
    assert not missing, f"fields without a docstring: {missing}"


def test_verdict_and_metric_names_are_the_documented_ones() -> None:
    assert tables.VERDICTS == ("faster", "slower", "no_significant_difference", "insufficient")
    assert tables.METRICS == ("p50", "p95", "cold", "drift", "share", "cost", "energy")
