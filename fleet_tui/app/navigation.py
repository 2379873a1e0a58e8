"""How the operator moves between screens: one table, from which the app's bindings, the help
screen and the command palette are all generated.

Pattern (every screen follows it):
- a top-level screen lives in its own module under ``fleet_tui/app/screens/`` and is listed once
  in ``DESTINATIONS`` below (key, name, title, module, class);
- each destination is a Textual *mode* (``App.MODES``); the app binds its key to
  ``app.open_screen('<name>')``, which switches mode, building the screen on first use. A mode
  keeps its own screen stack, so leaving a screen never loses its state or stops its workers,
  and a dialog pushed on one screen stays with it;
- a screen's constructor takes no arguments: it reads what it needs (nodes, settings, store
  path) from the app (``FleetApp``) when mounted, so the table can build it by name;
- dialogs (``ModalScreen``) live under ``fleet_tui/app/dialogs/`` and are pushed with
  ``push_screen`` / ``push_screen_wait`` by the screen that needs them, never listed here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.screen import Screen


@dataclass(frozen=True)
class Destination:
    """A top-level screen reachable from anywhere by one key."""

    name: str
    key: str
    title: str
    description: str
    module: str
    class_name: str

    def build(self) -> Screen[None]:
        """A new instance of the screen. Imported lazily: the Fleet screen must paint first."""
        screen_class = getattr(importlib.import_module(self.module), self.class_name)
        screen: Screen[None] = screen_class()
        return screen


DESTINATIONS: tuple[Destination, ...] = (
    Destination("fleet", "f", "Fleet", "The live node table", "fleet_tui.app.screens.fleet", "FleetScreen"),
    Destination(
        "builder",
        "w",
        "Sweep builder",
        "Build and launch a sweep",
        "fleet_tui.app.screens.sweep_builder",
        "SweepBuilderScreen",
    ),  # fmt: skip
    Destination(
        "live",
        "l",
        "Live sweep",
        "The sweep running here",
        "fleet_tui.app.screens.live_sweep",
        "LiveSweepScreen",
    ),  # fmt: skip
    Destination("runs", "u", "Runs", "Every stored run", "fleet_tui.app.screens.runs", "RunsScreen"),
    Destination(
        "compare", "c", "Compare", "SoC side by side", "fleet_tui.app.screens.compare", "CompareScreen"
    ),
    Destination(
        "run_detail",
        "g",
        "Run detail",
        "Plots, compute plan and numeric gate of one run",
        "fleet_tui.app.screens.run_detail",
        "RunDetailScreen",
    ),
    Destination(
        "inventory",
        "i",
        "Inventory",
        "Add, edit and remove nodes; test a connection",
        "fleet_tui.app.screens.inventory",
        "InventoryScreen",
    ),
)
"""Every top-level screen, in the order the footer and help show them. Add a row to add one."""


def destination(name: str) -> Destination:
    """The destination called `name` (KeyError if there is none)."""
    for entry in DESTINATIONS:
        if entry.name == name:
            return entry
    raise KeyError(name)
