"""TUI benchmark: time to first paint of the Fleet screen, and the Compare screen's render of a
table model with 5,000 result rows.

Run:  .venv/bin/python tests/bench/bench_tui.py [--rows 5000] [--repeat 3]

Targets (issue 12): Fleet screen first paint under 1 s; Compare render of 5,000 rows under
200 ms. First paint is measured from `App.run_test` entry until the Fleet screen's table holds
its rows and a frame was drawn (the local node's probe runs in the background and is not
waited for). The Compare figure is what the UI thread does, `CompareTable.show_layout` plus the
next refresh, on a synthetic table model (one column per node, every cell with p50 / p95
estimates and a ratio); the layout it shows (every cell's words, column widths) is built in the
screen's worker thread beside the table model, and printed on its own line.
Each figure is the median of --repeat rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fleet_tui.analysis.tables import Cell, Column, ComparisonTable, Estimate, Ratio, Row
from fleet_tui.app.app import FleetApp
from fleet_tui.app.screens.compare import CompareScreen, CompareTable, grid_layout
from fleet_tui.app.screens.fleet import FleetScreen
from fleet_tui.app.widgets.node_table import NodeTable
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport.base import SshSettings

NODES = ("m1-a", "m2pro-a", "m4-a")


def synthetic_table(rows: int) -> ComparisonTable:
    columns = tuple(
        Column(key=n, label=n, node=n, run_id=1, chip=n, is_baseline=(i == 0)) for i, n in enumerate(NODES)
    )
    row_models = tuple(
        Row(key=f"r{i}", workload="mlp", bucket=f"b{i}", engine="coreml", engine_key="coreml:all:fp16")
        for i in range(rows)
    )
    cells = tuple(
        Cell(
            row=r.key,
            column=c.key,
            state="done",
            n=200,
            runs=3,
            p50_ms=Estimate(1.0 + j, 0.9 + j, 1.1 + j),
            p95_ms=Estimate(1.5 + j, 1.4 + j, 1.7 + j),
            ratio=None
            if c.is_baseline
            else Ratio(
                metric="p95",
                reference=NODES[0],
                estimate=0.8,
                low=0.7,
                high=0.9,
                verdict="faster",
                text="0.8x (0.7-0.9) faster",
            ),  # fmt: skip
        )
        for r in row_models
        for j, c in enumerate(columns)
    )
    return ComparisonTable(
        kind="soc", title="bench", run_ids=(1,), baseline=NODES[0], metric="p95",
        columns=columns, rows=row_models, cells=cells,
    )  # fmt: skip


async def first_paint_s(tmp: Path) -> float:
    local = Node(name="local", host="localhost", transport="local", python=sys.executable, source="bench")
    start = time.perf_counter()
    app = FleetApp([local], SshSettings(known_hosts=tmp / "kh", ssh_config=None))
    async with app.run_test(size=(120, 40)) as pilot:
        # run_test yields once the app is ready: the Fleet screen is mounted with its rows.
        await pilot.pause()  # one frame drawn
        assert isinstance(app.screen, FleetScreen) and app.screen.query_one(NodeTable).row_count == 1
        elapsed = time.perf_counter() - start
        await app.workers.wait_for_complete()
    return elapsed


async def compare_render_s(rows: int, tmp: Path) -> tuple[float, float]:
    table = synthetic_table(rows)
    local = Node(name="local", host="localhost", transport="local", python=sys.executable, source="bench")
    app = FleetApp([local], SshSettings(known_hosts=tmp / "kh", ssh_config=None), db_path=tmp / "none.db")
    async with app.run_test(size=(160, 48)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("c")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        grid = screen.query_one(CompareTable)
        start = time.perf_counter()
        layout = grid_layout(table)  # in the screen's worker thread, beside the table model
        laid_out = time.perf_counter()
        grid.show_layout(layout)
        await pilot.pause()
        shown = time.perf_counter()
        assert grid.row_count == rows
    return laid_out - start, shown - laid_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        paints = [asyncio.run(first_paint_s(tmp)) for _ in range(args.repeat)]
        renders = [asyncio.run(compare_render_s(args.rows, tmp)) for _ in range(args.repeat)]
    print(f"fleet screen first paint: median {statistics.median(paints) * 1000:.0f} ms "
          f"(rounds: {', '.join(f'{p * 1000:.0f}' for p in paints)} ms; target < 1000 ms)")  # fmt: skip
    shown = [ui for _, ui in renders]
    print(f"compare render, {args.rows} rows x {len(NODES)} nodes, on the UI thread (fill + first "
          f"paint): median {statistics.median(shown) * 1000:.0f} ms "
          f"(rounds: {', '.join(f'{r * 1000:.0f}' for r in shown)} ms; target < 200 ms)")  # fmt: skip
    print(f"  layout in the worker thread beside the table model: median "
          f"{statistics.median(lay for lay, _ in renders) * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
