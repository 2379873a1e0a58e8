"""What both front ends (CLI and TUI) take from the command line: SSH settings and the inventory."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

DEFAULT_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SshSettings:
    """How the controller talks SSH. Host-key checking is always on; there is no way to turn it off."""

    known_hosts: Path | None = None
    """known_hosts to check and extend; None means ~/.ssh/known_hosts (resolved at use)."""
    ssh_config: Sequence[Path] | None = ()
    """() reads ~/.ssh/config (as asyncssh does); None reads nothing; or explicit files."""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    accept_new_host_keys: bool = False
    """Trust-on-first-use for nodes absent from known_hosts. A changed key is always refused."""
    use_ssh_agent: bool = True
    """Offer keys from $SSH_AUTH_SOCK (tests turn it off so a developer's agent cannot leak in)."""

    def known_hosts_path(self) -> Path:
        if self.known_hosts is not None:
            return Path(self.known_hosts).expanduser()
        return Path(os.path.expanduser("~")) / ".ssh" / "known_hosts"


def settings_from_args(args: argparse.Namespace) -> SshSettings:
    """SshSettings from the shared `--known-hosts`, `--accept-new-host-keys`, `--connect-timeout`."""
    known_hosts = getattr(args, "known_hosts", None)
    return SshSettings(
        known_hosts=Path(known_hosts).expanduser() if known_hosts else None,
        connect_timeout=float(getattr(args, "connect_timeout", None) or DEFAULT_CONNECT_TIMEOUT_S),
        accept_new_host_keys=bool(getattr(args, "accept_new_host_keys", False)),
    )


def load_nodes(args: argparse.Namespace) -> list[Node]:
    """The inventory named by --inventory (or the default chain). Raises InventoryError."""
    from fleet_tui.config.inventory import InventoryError, load_inventory, resolve_inventory_path

    path = resolve_inventory_path(getattr(args, "inventory", None))
    nodes = load_inventory(path)
    if not nodes:
        raise InventoryError(f"{path}: no [[node]] tables; nothing to do")
    return nodes
