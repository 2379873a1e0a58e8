"""Runs and Compare screens on a fixed stored run (tests/export_fixture.py), driven with Pilot:
open the run, toggle metric and baseline, export Markdown through the registry, read the file."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import export_fixture
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList

from fleet_tui.app.app import FleetApp
from fleet_tui.app.dialogs.export import BUNDLE, ExportDialog
from fleet_tui.app.screens.compare import TOGGLE_METRICS, CompareScreen, CompareTable, cell_text
from fleet_tui.app.screens.runs import RunsScreen
from fleet_tui.config.inventory import Node
from fleet_tui.export import FORMATS
from fleet_tui.fleet.transport.base import SshSettings

Settle = Callable[[Pilot[Any]], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)

SMALL: dict[str, Any] = {
    "nodes": export_fixture.NODES[:2],
    "runs": 2,
    "samples_per_run": 140,
    "sustained_samples": 150,
}


@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    db = tmp_path / "fixture.db"
    export_fixture.build(db, **SMALL).store.close()
    return db


def app_on(db: Path, local_node: Node, tmp_path: Path) -> FleetApp:
    settings = SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None)
    return FleetApp([local_node], settings, db_path=db)


async def export_from_dialog(pilot: Any, app: FleetApp, settle: Settle, choice: str, path: Path) -> list[str]:
    """Press `e` on the Compare screen, pick `choice`, write to `path`; the options offered."""
    await pilot.press("e")
    await pilot.pause()
    dialog = app.screen
    assert isinstance(dialog, ExportDialog)
    offered = [str(o.id) for o in dialog.query_one(OptionList).options]
    dialog.query_one(OptionList).highlighted = offered.index(choice)
    await pilot.pause()
    dialog.query_one(Input).value = str(path)
    dialog.query_one(Input).focus()
    await pilot.press("enter")
    await settle(pilot)
    return offered


async def test_runs_then_compare_then_export_markdown(
    stored_run: Path, local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    app = app_on(stored_run, local_node, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        table = runs.query_one("#runs-table", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[1] == str(runs.runs[0].id) and row[3] == runs.runs[0].status
        done, total = runs.runs[0].cells.get("done", 0), sum(runs.runs[0].cells.values())
        assert row[5] == f"{done}/{total}" and total > 0

        await pilot.press("enter")
        await settle(pilot)
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        model = compare.table
        assert model is not None and model.kind == "soc" and model.run_ids == (runs.runs[0].id,)
        grid = compare.query_one(CompareTable)
        assert grid.row_count == len(model.rows)
        assert len(grid.columns) == len(model.columns) + 1
        # Every row shows its label and, per node, the words the table model gives its cell.
        for row_index, model_row in enumerate(model.rows):
            shown = [str(value) for value in grid.get_row_at(row_index)]
            assert shown[0] == f"{model_row.workload} {model_row.bucket} {model_row.engine_key}"
            assert shown[1:] == [
                cell_text(model.cell(model_row.key, c.key), model.metric) for c in model.columns
            ]
        # Verdict colouring comes from the table model's ratio verdicts.
        verdicts = {c.ratio.verdict for c in model.cells if c.ratio is not None}
        assert verdicts, "the fixture has cells compared with the baseline"

        first_baseline = model.baseline
        await pilot.press("b")
        await settle(pilot)
        assert compare.table is not None and compare.table.baseline != first_baseline
        await pilot.press("m")
        await settle(pilot)
        assert compare.table is not None and compare.table.metric == "cold"

        out = tmp_path / "out" / "compare.md"
        out.parent.mkdir()
        offered = await export_from_dialog(pilot, app, settle, "md", out)
        assert offered == [*FORMATS, BUNDLE]
        assert isinstance(app.screen, CompareScreen)
        text = out.read_text()
        written = compare.table
        assert written is not None
        for r in written.rows:
            assert any(r.workload in line and r.bucket in line for line in text.splitlines()), r
        for column in written.columns:
            assert column.label in text


async def test_two_picked_runs_open_run_vs_run(local_node: Node, settle: Settle, tmp_path: Path) -> None:
    import compare_fixture
    import numpy as np

    rng = np.random.default_rng(7)
    nodes = [Node(name="node-a", host="127.0.0.2", source="test")]
    db = tmp_path / "two.db"
    store, first = compare_fixture.build(db, nodes, lambda _n, _k: compare_fixture.lognormal_runs(rng, 2.0))
    _same, second = compare_fixture.build(
        db, nodes, lambda _n, _k: compare_fixture.lognormal_runs(rng, 3.0), store=store
    )
    store.close()
    app = app_on(db, local_node, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        runs = app.screen
        assert isinstance(runs, RunsScreen) and [r.id for r in runs.runs] == [second, first]
        await pilot.press("space", "down", "space")
        await pilot.pause()
        assert runs.picked == [second, first]
        await pilot.press("enter")
        await settle(pilot)
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        assert compare.table is not None and compare.table.kind == "run_vs_run"
        assert compare.table.run_ids == (first, second)  # the earlier run is the reference
        slower = [c for c in compare.table.cells if c.ratio is not None and c.ratio.verdict == "slower"]
        assert slower, "run b is 1.5x slower: the table model says so and the screen shows it"
        grid = compare.query_one(CompareTable)
        assert grid.row_count == len(compare.table.rows)


async def test_fleet_detail_shows_last_probe_and_recent_runs(
    stored_run: Path, settle: Settle, tmp_path: Path
) -> None:
    from fleet_tui.app.widgets.node_detail import NodeDetail
    from fleet_tui.store import Store

    with Store.open(stored_run) as store:
        run = store.list_runs()[0]
    refused = Node(name="m1-a", host="127.0.0.1", port=9, source="test")  # a node of the stored run
    app = FleetApp([refused], SshSettings(known_hosts=tmp_path / "kh", ssh_config=None), db_path=stored_run)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        text = str(app.screen.query_one(NodeDetail).content)
        done, total = run.cells.get("done", 0), sum(run.cells.values())
        assert f"run {run.id} {run.status} {done}/{total} cells" in text, text
        assert all(f"{v} {n}" in text for v, n in run.gates.items() if n), text
        assert "last probe 20" in text  # an ISO timestamp


async def test_a_bundle_from_compare_holds_what_the_cli_bundle_holds(
    stored_run: Path, local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    """The export dialog's bundle carries the same exports and charts as `fleet-tui bundle`."""
    from fleet_tui.cli import main

    app = app_on(stored_run, local_node, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        run_id = app.screen.runs[0].id  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        tui_dir = tmp_path / "tui-bundle"
        await export_from_dialog(pilot, app, settle, BUNDLE, tui_dir)
    cli_dir = tmp_path / "cli-bundle"
    assert main(["bundle", str(run_id), "--db", str(stored_run), "--output", str(cli_dir)]) == 0

    def exports(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] in ("exports", "charts")
        }

    tui_files = exports(tui_dir)
    assert "exports/report.html" in tui_files and any(name.startswith("charts/") for name in tui_files)
    assert tui_files == exports(cli_dir)


async def test_the_metric_toggle_reaches_energy_per_inference(settle: Settle, tmp_path: Path) -> None:
    """m cycles to the energy metric: cells measured with a power reader show J/inference and SoC
    watts, with the table model's energy verdict (a third of the energy: 'less energy')."""
    import numpy as np
    from compare_fixture import build, facts, lognormal_runs

    rng = np.random.default_rng(5)
    nodes = (Node(name="a", host="127.0.0.2", tier="M2"), Node(name="c", host="127.0.0.4", tier="M4 Pro"))

    def energy(node: str, key: str) -> dict[str, Any]:
        values = [{"a": 0.3, "c": 0.1}[node] * float(np.exp(rng.normal(0, 0.01))) for _ in range(5)]
        return {
            "power_reader": "macmon",
            "energy": {
                "status": "ok",
                "reader": {"name": "macmon", "version": "0.6.1", "interval_ms": 100},
                "window": "measure",
                "n_runs": 5,
                "j_per_inference": {"soc": {"estimate": float(np.mean(values)), "values": values}},
                "gross_j_per_inference": {"soc": float(np.mean(values)) + 0.01, "system": 0.5},
                "avg_watts": {"soc": 8.0, "system": 18.0},
                "idle_watts": {"soc": 0.6, "system": 10.0},
                "flags": [],
            },
        }

    db = tmp_path / "energy.db"
    store, _ = build(
        db,
        nodes,
        lambda node, key: lognormal_runs(rng, 2.0),
        node_facts={"a": facts("a"), "c": facts("c", chip="Apple M4 Pro")},
        extra=energy,
    )
    store.close()
    app = FleetApp([], SshSettings(known_hosts=tmp_path / "kh", ssh_config=None), db_path=db)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        for _ in range(len(TOGGLE_METRICS)):
            if compare.metric == "energy":
                break
            await pilot.press("m")
            await settle(pilot)
        assert compare.table is not None and compare.table.metric == "energy"
        shown = [str(value) for value in compare.query_one(CompareTable).get_row_at(0)]
        assert all("J/inf · 8.00 W" in text for text in shown[1:]), shown
        assert any("less energy" in text for text in shown[1:]), shown
