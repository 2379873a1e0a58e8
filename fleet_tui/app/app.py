"""The Textual application: owns the fleet's SSH connections and opens on the Fleet screen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker

from fleet_tui.app.commands import FleetCommands
from fleet_tui.app.navigation import DESTINATIONS, destination
from fleet_tui.config.inventory import Node, load_inventory
from fleet_tui.fleet.session import FleetConnections
from fleet_tui.fleet.transport.base import SshSettings

if TYPE_CHECKING:
    from fleet_tui.app.sweep_session import SweepSession


class FleetApp(App[int]):
    """fleet-tui's TUI. Returns 0 when the operator quits."""

    TITLE = "fleet-tui"
    CSS_PATH = "app.tcss"
    # Each top-level screen is a mode built on first use (see navigation.py).
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        entry.name: entry.build for entry in DESTINATIONS
    }
    DEFAULT_MODE = "fleet"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(entry.key, f"open_screen('{entry.name}')", entry.title, tooltip=entry.description)
            for entry in DESTINATIONS
        ),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]
    COMMANDS = App.COMMANDS | {FleetCommands}

    def __init__(
        self,
        nodes: Sequence[Node] | str | Path,
        settings: SshSettings,
        db_path: Path | None = None,
        inventory_path: Path | None = None,
    ) -> None:
        """`nodes` is the fleet, or an inventory path to load it from (InventoryError if bad)."""
        super().__init__()
        self.inventory_path = Path(nodes) if isinstance(nodes, str | Path) else inventory_path
        """The inventory file (or folder) the nodes came from: what the Inventory screen edits."""
        self.nodes: list[Node] = load_inventory(nodes) if isinstance(nodes, str | Path) else list(nodes)
        self.settings = settings
        """How every SSH connection is made (known_hosts, timeouts, accept-new)."""
        self.db_path = db_path
        """The SQLite store the Runs, Compare and Run detail screens read."""
        self.connections = FleetConnections(settings)
        """One transport per node, kept warm across refreshes and closed when the app exits."""
        self.compare_runs: tuple[int, ...] = ()
        """The runs the Compare screen shows (set by the Runs screen; empty = the latest run)."""
        self.detail_run: int | None = None
        """The run the Run detail screen shows (set by the Runs screen; None = the latest run)."""
        self.sweep: SweepSession | None = None
        """The sweep started here (the latest one); an app worker runs it, whatever screen is shown."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The key of the screen already shown is greyed out (None), not hidden: the footer stays put.
        if action == "open_screen" and parameters and parameters[0] == self.current_mode:
            return None
        return True

    def action_open_screen(self, name: str) -> None:
        """Switch to the top-level screen `name` (a mode; built the first time)."""
        destination(name)  # KeyError for a name that is not in the table: a bug, loudly
        if self.current_mode != name:
            self.switch_mode(name)

    async def rebuild_screen(self, name: str) -> None:
        """Drop the top-level screen `name` so the next visit builds it afresh (e.g. the Fleet
        screen after the inventory changed). The screen shown now is never dropped."""
        if name == self.current_mode:
            return
        await self.remove_mode(name)
        self.add_mode(name, destination(name).build)

    async def action_quit(self) -> None:
        """Quit; with a sweep running, ask first and stop it cleanly (the run is left interrupted)."""
        from fleet_tui.app.sweep_session import quit_after_sweep

        quit_after_sweep(self)

    def action_help(self) -> None:
        """Show every binding of the current screen and the app (generated, never hand-written)."""
        from fleet_tui.app.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def report_worker_error(self, worker: Worker[object]) -> None:
        """The one place a failed background worker is reported: logged and shown, never silent.

        Node faults are results, not worker errors; what lands here is the controller's own
        failure (an OSError writing known_hosts, a bug), named with the worker's task.
        """
        error = worker.error
        self.log.error(f"worker {worker.name!r} failed: {error!r}")
        what = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        self.notify(f"{worker.name}: {what}", title="Something went wrong", severity="error", timeout=30)

    async def on_unmount(self) -> None:
        # Screens (and so their probe workers) are gone by now; close the SSH connections they
        # left warm so no session outlives the TUI.
        await self.connections.close()
