"""Transports to nodes: `local` (subprocess) and `ssh` (asyncssh) behind one interface."""

from fleet_tui.fleet.transport.base import (
    AgentProcess,
    CommandResult,
    NodeError,
    NodeErrorKind,
    SshSettings,
    Transport,
    open_transport,
)

__all__ = [
    "AgentProcess",
    "CommandResult",
    "NodeError",
    "NodeErrorKind",
    "SshSettings",
    "Transport",
    "open_transport",
]
