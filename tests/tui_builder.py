"""The TUI sweep builder's test helpers: an app with a store, the builder opened, the smallest
real sweep filled in (one mlp bucket on numpy, test-sized measurement)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, SelectionList, Static, TextArea

from fleet_tui.app.app import FleetApp
from fleet_tui.app.screens.sweep_builder import SweepBuilderScreen
from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import SweepSpec
from fleet_tui.fleet.transport.base import SshSettings

Settle = Callable[[Pilot[Any]], Awaitable[None]]

REPO = Path(__file__).resolve().parents[1]
TINY_SETTINGS = """\
[measure]
runs = 2
warmup_min = 2
warmup_max = 10
min_samples = 30
min_duration_s = 0.2
max_duration_s = 1.0
sustained_minutes = 0
cooldown_s = 0
numeric = false

[scheduler]
on_busy = "skip"
busy_wait_s = 0
max_attempts = 1
"""


def builder_app(tmp_path: Path, nodes: list[Node]) -> FleetApp:
    settings = SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None)
    return FleetApp(nodes, settings, db_path=tmp_path / "fleet.db")


async def open_builder(pilot: Pilot[Any], settle: Settle) -> SweepBuilderScreen:
    await settle(pilot)
    await pilot.press("w")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, SweepBuilderScreen)
    return screen


async def fill_tiny_sweep(pilot: Pilot[Any], builder: SweepBuilderScreen, target: str = "node:local") -> None:
    """One mlp bucket on numpy fp64, test-sized measurement: the smallest real sweep."""
    builder.query_one("#builder-name", Input).value = "tui-tiny"
    builder.query_one("#builder-targets", SelectionList).select(target)
    builder.query_one("#builder-buckets", SelectionList).select("mlp/b1")
    builder.query_one("#builder-engines", SelectionList).select("numpy:fp64")
    builder.query_one("#builder-settings", TextArea).text = TINY_SETTINGS
    await pilot.pause()


def error_of(builder: SweepBuilderScreen) -> str:
    return str(builder.query_one("#builder-error", Static).content)


def spec_of(builder: SweepBuilderScreen) -> SweepSpec | None:
    """The builder's current spec (a call, so a type checker does not keep an old narrowing)."""
    return builder.spec
