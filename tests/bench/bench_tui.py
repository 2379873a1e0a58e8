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

Live sweep (issue 12: key press to screen update under 100 ms while an agent streams 10,000
samples/s; no memory growth beyond the rolling log's bound): a fake agent (an asyncio task in
the app's loop) feeds the TUI's Progress exactly as the scheduler does, one `samples` event per
--batch samples at --rate samples/s plus a progress tick every 100 samples, while the bench
presses keys that switch between Live sweep and Fleet; each figure is press -> the other screen
shown and its queued messages handled, once with no stream (the box's own latency) and once
streaming. The memory figure replays a simulated hour (--hour-cells cells, each with 10,000
samples in batches of 500, progress ticks, a job and a result line, a warning every tenth cell)
and prints traced memory at checkpoints: it levels off once the log holds its LOG_LINES lines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from textual import events

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


def live_app(tmp: Path) -> tuple[FleetApp, Any]:
    """An app with a sweep session (no scheduler: the fake agent below feeds its Progress)."""
    from fleet_tui.app.sweep_session import SweepSession
    from fleet_tui.config.spec import parse_spec

    local = Node(name="local", host="localhost", transport="local", python=sys.executable, source="bench")
    app = FleetApp([local], SshSettings(known_hosts=tmp / "kh", ssh_config=None), db_path=tmp / "none.db")
    spec = parse_spec('name = "bench"\n[[workload]]\nname = "mlp"\n[[workload.bucket]]\nname = "b1"\n'
                      'budget_ms = 2.0\n[engines]\nnumpy = [{}]\n')  # fmt: skip
    session = SweepSession(spec, [local])
    session.status = "running"
    app.sweep = session
    return app, session


async def fake_agent(progress: Any, rate: int, batch: int, stop: asyncio.Event, sent: list[int]) -> None:
    """Stream `rate` samples/s as `samples` events of `batch` samples (and progress ticks)."""
    start = time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - start) * rate) - sent[0]
        for _ in range(max(0, due // batch)):
            progress.emit("samples", node="local", cell="mlp/b1/numpy:fp64", count=batch)
            sent[0] += batch
            if sent[0] % 100 < batch:
                progress.emit(
                    "cell_progress", node="local", message=f"samples {sent[0]}", cell="mlp/b1/numpy:fp64"
                )
        await asyncio.sleep(0.001)


async def key_latency_ms(
    tmp: Path, rate: int, batch: int, presses: int
) -> tuple[list[float], float, int, int]:
    """Key press -> screen switched and drawn, while the fake agent streams; also the rate
    achieved, the events sent and the redraws they caused."""
    from fleet_tui.app.screens.live_sweep import LiveSweepScreen
    from fleet_tui.app.sweep_session import TuiProgress

    app, session = live_app(tmp)
    latencies: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("l")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, LiveSweepScreen)
        stop, sent = asyncio.Event(), [0]
        agent = asyncio.create_task(fake_agent(TuiProgress(app, session), rate, batch, stop, sent))
        await asyncio.sleep(0.5)  # the stream is under way
        started, sent_before, redraws_before = time.perf_counter(), sent[0], live.redraws
        for index in range(presses):
            key, want = ("f", FleetScreen) if index % 2 == 0 else ("l", LiveSweepScreen)
            t0 = time.perf_counter()
            # The key as the terminal driver delivers it. Not pilot.press / pilot.pause: they wait
            # for the process to go idle (up to 2 s), which it never does while the agent streams.
            app.post_message(events.Key(key, key))
            while not isinstance(app.screen, want):  # noqa: ASYNC110 (polling is what is timed)
                await asyncio.sleep(0)
            await pilot._wait_for_screen()  # the new screen's queued messages (its refresh) handled
            latencies.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        await agent
        achieved = (sent[0] - sent_before) / elapsed
        streamed = (sent[0] - sent_before) // batch
        redraws = live.redraws - redraws_before
    return latencies, achieved, streamed, redraws


async def long_sweep_memory(tmp: Path, cells: int) -> list[tuple[int, float, int]]:
    """Replay a simulated hour; (cells done, traced MB, log lines) at checkpoints."""
    import gc
    import tracemalloc

    from textual.widgets import RichLog

    from fleet_tui.app.screens.live_sweep import LiveSweepScreen
    from fleet_tui.app.sweep_session import TuiProgress

    app, session = live_app(tmp)
    points: list[tuple[int, float, int]] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("l")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, LiveSweepScreen)
        progress = TuiProgress(app, session)
        log = live.query_one("#live-log", RichLog)
        tracemalloc.start()
        for cell in range(1, cells + 1):
            key = f"mlp/b1/numpy:fp64#{cell}"
            progress.emit("job_started", node="local", message=f"job mlp: 1 cell(s), attempt 1 ({key})")
            progress.emit("cell_started", node="local", message=f"{key} started", cell=key)
            for tick in range(20):  # 10,000 samples in batches of 500, a progress tick each
                progress.emit("samples", node="local", cell=key, count=500)
                progress.emit("cell_progress", node="local", message=f"{key} samples {tick * 500}", cell=key)
            progress.emit(
                "cell_result", node="local", message=f"done {key}: p50 1.000 ms", cell=key, flags=[]
            )
            if cell % 10 == 0:
                progress.emit("agent_warning", node="local", message=f"warning after cell {cell}")
            await pilot._wait_for_screen()  # the screen has handled what was posted (see above)
            if cell % max(1, cells // 8) == 0 or cell == cells:
                gc.collect()
                current, _peak = tracemalloc.get_traced_memory()
                points.append((cell, current / 1e6, len(log.lines)))
        tracemalloc.stop()
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=int, default=10_000, help="samples/s the fake agent streams")
    parser.add_argument("--batch", type=int, default=1, help="samples per event (1: the worst case)")
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--hour-cells", type=int, default=700, help="cells of the simulated hour")
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
    from fleet_tui.app.sweep_session import LOG_LINES

    with tempfile.TemporaryDirectory() as tmp_text:
        quiet, _, _, _ = asyncio.run(key_latency_ms(Path(tmp_text), 0, 1, args.presses))
        latencies, achieved, events, redraws = asyncio.run(
            key_latency_ms(Path(tmp_text), args.rate, args.batch, args.presses)
        )
        points = asyncio.run(long_sweep_memory(Path(tmp_text), args.hour_cells))
    ordered = sorted(latencies)
    print(f"live sweep key press -> screen drawn while streaming {achieved:,.0f} samples/s "
          f"({events:,} events of {args.batch}, {redraws} redraws): "
          f"median {statistics.median(ordered):.0f} ms, "
          f"max {ordered[-1]:.0f} ms over {len(ordered)} presses (target < 100 ms); with no stream: "
          f"median {statistics.median(quiet):.0f} ms, max {max(quiet):.0f} ms; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(f"live sweep memory over a simulated hour ({args.hour_cells} cells, 10,000 samples and 2 log "
          f"lines each; "
          f"log bound {LOG_LINES} lines): "
          + ", ".join(f"{cell} cells {mb:.1f} MB / {lines} lines" for cell, mb, lines in points))  # fmt: skip


if __name__ == "__main__":
    main()
