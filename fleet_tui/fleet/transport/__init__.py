"""Transports to nodes: `local` (subprocess) and `ssh` (asyncssh) behind one interface.

The factory lives here, above the implementations, so `base` never imports them (asyncssh is
imported only when an SSH node is opened).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleet_tui.fleet.transport.base import (
    AgentProcess,
    CommandResult,
    NodeError,
    NodeErrorKind,
    SshSettings,
    Transport,
)

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node


def open_transport(node: Node, settings: SshSettings) -> Transport:
    """The transport for a node (not yet connected)."""
    if node.transport == "local":
        from fleet_tui.fleet.transport.local import LocalTransport

        return LocalTransport(node)
    if node.transport == "ssh":
        from fleet_tui.fleet.transport.ssh import SshTransport

        return SshTransport(node, settings)
    raise NodeError(NodeErrorKind.CONFIG, node.name, f"unknown transport {node.transport!r} ({node.source})")


__all__ = [
    "AgentProcess",
    "CommandResult",
    "NodeError",
    "NodeErrorKind",
    "SshSettings",
    "Transport",
    "open_transport",
]
