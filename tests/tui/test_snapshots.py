"""SVG snapshots of the Runs, Compare, export, help and Run detail screens at 80x24 and 160x48, on the fixed
stored run of tests/export_fixture.py with its timestamps frozen.

Regenerate after a deliberate change: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import export_fixture
import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from fleet_tui.app.app import FleetApp
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport.base import SshSettings

pytestmark = pytest.mark.timeout(120)

SIZES = [(80, 24), (160, 48)]
FIXTURE: dict[str, Any] = {
    "nodes": export_fixture.NODES[:2],
    "runs": 2,
    "samples_per_run": 140,
    "sustained_samples": 150,
}


def frozen_store(path: Path) -> Path:
    """The fixture store with the store's own timestamps set to fixed values."""
    export_fixture.build(path, **FIXTURE).store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET started_at = '2026-01-01T00:00:00+00:00'")
        conn.execute("UPDATE runs SET finished_at = '2026-01-01T00:12:34+00:00'")
    return path


def app_for(tmp_path: Path) -> FleetApp:
    # A node nothing listens for: its probe fails at once, the same way every time.
    refused = Node(name="nowhere", host="127.0.0.1", port=9, source="snapshot")
    settings = SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None)
    return FleetApp([refused], settings, db_path=frozen_store(tmp_path / "fixture.db"))


def keys_then_settle(*keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        for key in keys:
            await pilot.press(key)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    "keys",
    [("u",), ("u", "enter"), ("u", "enter", "e"), ("u", "question_mark"), ("u", "d")],
    ids=["runs", "compare", "export", "help", "run-detail"],
)
def test_screen_snapshot(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int], keys: tuple[str, ...]
) -> None:
    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=keys_then_settle(*keys))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fleet_screen_snapshot(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The Fleet screen after its probe: the refused node's row, detail pane and totals (the probe
    time frozen like the store's timestamps)."""

    async def run_before(pilot: Pilot[Any]) -> None:
        from fleet_tui.app.screens.fleet import FleetScreen

        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = pilot.app.screen
        assert isinstance(screen, FleetScreen)
        for state in screen.states.values():
            state.probed_at = "2026-01-01T00:00:00+00:00"
            state.result = state.result and dataclasses.replace(state.result, seconds=0.01)
            screen._redraw(state)
        await pilot.pause()

    assert snap_compare(app_for(tmp_path), terminal_size=size, run_before=run_before)


INVENTORY = """\
[defaults]
user = "bench"

[[node]]
name = "nowhere"
host = "127.0.0.1"
port = 9
tier = "M1"
hourly_usd = 0.5
tags = ["lab"]
"""


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_inventory_snapshot(
    snap_compare: Any, tmp_path: Path, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Inventory screen on a small file, with a port being typed wrong (the error names it)."""
    monkeypatch.chdir(tmp_path)  # the screen shows the file's path: keep it the same every run
    Path("fleet.toml").write_text(INVENTORY)
    settings = SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None)
    app = FleetApp(Path("fleet.toml"), settings)

    async def run_before(pilot: Pilot[Any]) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.press("i")
        await pilot.pause()
        pilot.app.screen.query_one("#field-port", Input).value = "9x"
        await pilot.pause()
        pilot.app.screen.query_one("#inventory-nodes").focus()  # no blinking cursor in the picture
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
