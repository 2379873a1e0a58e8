"""The Textual application: owns the fleet's SSH connections and opens on the Fleet screen."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from fleet_tui.app.screens.fleet import FleetScreen
from fleet_tui.config.inventory import Node, load_inventory
from fleet_tui.fleet.session import FleetConnections
from fleet_tui.fleet.transport.base import SshSettings


class FleetApp(App[int]):
    """fleet-tui's TUI. Returns 0 when the operator quits."""

    TITLE = "fleet-tui"
    CSS_PATH = "app.tcss"
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(
        self,
        nodes: Sequence[Node] | str | Path,
        settings: SshSettings,
        db_path: Path | None = None,
    ) -> None:
        """`nodes` is the fleet, or an inventory path to load it from (InventoryError if bad)."""
        super().__init__()
        self.nodes: list[Node] = load_inventory(nodes) if isinstance(nodes, str | Path) else list(nodes)
        self.settings = settings
        """How every SSH connection is made (known_hosts, timeouts, accept-new)."""
        self.db_path = db_path
        """The SQLite store; later screens (runs, compare) read it. The fleet screen does not."""
        self.connections = FleetConnections(settings)
        """One transport per node, kept warm across refreshes and closed when the app exits."""

    def on_mount(self) -> None:
        self.push_screen(FleetScreen(self.nodes))

    async def on_unmount(self) -> None:
        # Screens (and so their probe workers) are gone by now; close the SSH connections they
        # left warm so no session outlives the TUI.
        await self.connections.close()
