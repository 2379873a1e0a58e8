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
