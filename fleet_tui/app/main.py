"""`fleet-tui` with no command: load the inventory, then run the TUI.

Textual and asyncssh are imported only once the inventory has loaded, so a bad inventory
fails fast with a plain message and the terminal never switches to the TUI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet_tui.transport.base import SshSettings

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def settings_from_args(args: argparse.Namespace) -> SshSettings:
    """SshSettings from the shared `--known-hosts`, `--accept-new-host-keys`, `--connect-timeout`."""
    from fleet_tui.transport.base import SshSettings

    known_hosts = getattr(args, "known_hosts", None)
    return SshSettings(
        known_hosts=Path(known_hosts).expanduser() if known_hosts else None,
        connect_timeout=float(getattr(args, "connect_timeout", 10.0)),
        accept_new_host_keys=bool(getattr(args, "accept_new_host_keys", False)),
    )


def run_app(args: argparse.Namespace) -> int:
    """Run the TUI on the inventory named by `args`. Returns the process exit code.

    Exit 2 (without starting the TUI) for a bad inventory or an empty one, with the reason
    on stderr.
    """
    from fleet_tui.inventory import InventoryError, load_inventory, resolve_inventory_path
    from fleet_tui.paths import resolve_db_path

    path = resolve_inventory_path(getattr(args, "inventory", None))
    try:
        nodes = load_inventory(path)
    except InventoryError as exc:
        print(f"fleet-tui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not nodes:
        print(f"fleet-tui: {path}: the inventory has no [[node]] entries", file=sys.stderr)
        return EXIT_BAD_INPUT

    from fleet_tui.app.app import FleetApp

    app = FleetApp(nodes, settings_from_args(args), db_path=resolve_db_path(getattr(args, "db", None)))
    app.run()
    # return_code is 1 when the app died of an exception, 0 (or None) after a normal quit.
    return app.return_code or EXIT_OK
