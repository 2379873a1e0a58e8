"""SVG snapshots of the Sweep builder at 80x24 and 160x48: the tiny sweep filled in, its plan
(with the fixed stored run's store, and an empty artifact cache so the build estimate is fixed).

Regenerate after a deliberate change: pytest tests/tui/test_snapshots_sweep.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import export_fixture
import pytest
from textual.pilot import Pilot
from tui_builder import fill_tiny_sweep

from fleet_tui.app.app import FleetApp
from fleet_tui.app.screens.sweep_builder import SweepBuilderScreen
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport.base import SshSettings

pytestmark = pytest.mark.timeout(120)

SIZES = [(80, 24), (160, 48)]


def frozen_store(path: Path) -> Path:
    """The Runs/Compare snapshots' fixed store (its facts feed the plan), timestamps fixed."""
    import sqlite3

    export_fixture.build(path, nodes=export_fixture.NODES[:2], runs=2, samples_per_run=140).store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET started_at = '2026-01-01T00:00:00+00:00'")
    return path


async def build_tiny_sweep(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.press("w")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    builder = pilot.app.screen
    assert isinstance(builder, SweepBuilderScreen)
    await fill_tiny_sweep(pilot, builder, target="node:nowhere")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_builder_snapshot(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TUI_CACHE", str(tmp_path / "cache"))  # no artifact cached: a fixed estimate
    refused = Node(name="nowhere", host="127.0.0.1", port=9, source="snapshot")
    settings = SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None)
    app = FleetApp([refused], settings, db_path=frozen_store(tmp_path / "fixture.db"))
    assert snap_compare(app, terminal_size=size, run_before=build_tiny_sweep)


class _FixedClock:
    """The session's log stamps (datetime.now) at a fixed time, so the log draws the same."""

    @staticmethod
    def now() -> Any:
        from datetime import datetime

        return datetime(2026, 1, 1, 12, 0, 0)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_live_sweep_snapshot(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Live sweep screen mid-run, fed a fixed stream of scheduler events: a node measuring a
    cell with its samples, a finished cell, thermal pressure and a node's warning (its escape
    codes stripped), a node lost."""
    from spec_fixtures import spec_toml

    from fleet_tui.app import sweep_session
    from fleet_tui.config.spec import parse_spec
    from fleet_tui.store import CellRow
    from fleet_tui.sweep.counters import SweepCounters

    monkeypatch.setattr(sweep_session, "datetime", _FixedClock)
    nodes = [Node(name="m4-pro", host="127.0.0.2", source="snapshot"), Node(name="m1", host="127.0.0.3")]
    app = FleetApp(nodes, SshSettings(known_hosts=tmp_path / "kh", ssh_config=None), db_path=None)

    async def run_before(pilot: Pilot[Any]) -> None:
        spec = parse_spec(spec_toml("live"))
        session = sweep_session.SweepSession(spec, nodes)
        keys = ("mlp/b1/numpy:fp64", "mlp/b1/mlx:cpu:fp32")
        cells = [
            CellRow(
                i,
                7,
                node.name,
                "mlp",
                "b1",
                key.split("/")[2].split(":")[0],
                {},
                key,
                "pending",
                0,
                None,
                None,
                None,
            )  # fmt: skip
            for i, (node, key) in enumerate(((n, k) for n in nodes for k in keys), start=1)
        ]
        ticks = iter(range(0, 10_000, 20))  # each clock read 20 s later: a fixed ETA
        session.counters = SweepCounters(cells, spec, clock=lambda: float(next(ticks)))
        for cell in cells:
            session.cell_ids[(cell.node, cell.key)] = cell.id
            session.nodes[cell.node].cells.add(cell.id)
        events: list[tuple[str, str | None, str, dict[str, Any]]] = [
            ("run_started", None, "run 7 started: 4 cells on 2 nodes", {"run_id": 7}),
            ("cell_started", "m4-pro", "mlp/b1/numpy:fp64 started", {"cell": "mlp/b1/numpy:fp64"}),
            ("samples", "m4-pro", "", {"count": 480}),
            ("cell_result", "m4-pro", "done mlp/b1/numpy:fp64: p50 0.061 ms", {"cell": "mlp/b1/numpy:fp64"}),
            ("cell_started", "m4-pro", "mlp/b1/mlx:cpu:fp32 started", {"cell": "mlp/b1/mlx:cpu:fp32"}),
            ("samples", "m4-pro", "", {"count": 130}),
            ("thermal", "m4-pro", "", {"state": {"thermal_pressure": "moderate"}}),
            ("agent_warning", "m1", "warning slow (node says): \x1b[2Jdisk nearly full", {}),
            ("node_lost", "m1", "lost: connection closed by the node", {}),
        ]
        for kind, node, message, fields in events:
            session.apply(kind, node, message, fields)
        pilot.app.sweep = session  # type: ignore[attr-defined]
        await pilot.press("l")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
