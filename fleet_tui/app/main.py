"""`fleet-tui` with no command: load the inventory, then run the TUI.

Textual and asyncssh are imported only once the inventory has loaded, so a bad inventory
fails fast with a plain message and the terminal never switches to the TUI.
"""

from __future__ import annotations

import argparse
import sys

# The headless commands' reading of the shared SSH flags: the TUI must connect exactly as they do.
from fleet_tui.config.settings import settings_from_args
from fleet_tui.model.exit_codes import ExitCode


def run_app(args: argparse.Namespace) -> int:
    """Run the TUI on the inventory named by `args`. Returns the process exit code.

    Exit 2 (without starting the TUI) for a bad inventory or an empty one, with the reason
    on stderr.
    """
    from fleet_tui.config.inventory import InventoryError, load_inventory, resolve_inventory_path
    from fleet_tui.paths import resolve_db_path

    path = resolve_inventory_path(getattr(args, "inventory", None))
    try:
        nodes = load_inventory(path)
    except InventoryError as exc:
        print(f"fleet-tui: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if not nodes:
        print(f"fleet-tui: {path}: the inventory has no [[node]] entries", file=sys.stderr)
        return ExitCode.BAD_INPUT

    from fleet_tui.app.app import FleetApp

    app = FleetApp(
        nodes,
        settings_from_args(args),
        db_path=resolve_db_path(getattr(args, "db", None)),
        inventory_path=path,
    )
    app.run()
    # return_code is 1 when the app died of an exception, 0 (or None) after a normal quit.
    return app.return_code or ExitCode.OK
