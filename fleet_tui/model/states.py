"""States and kinds as string enums: what the store, the CLI and the TUI all name the same way."""

from __future__ import annotations

from enum import StrEnum


class NodeErrorKind(StrEnum):
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    AUTH_FAILED = "auth_failed"
    HOST_KEY_UNKNOWN = "host_key_unknown"
    HOST_KEY_CHANGED = "host_key_changed"
    HOST_KEY_REVOKED = "host_key_revoked"
    """The server presents a key known_hosts marks @revoked: refused, never trusted."""
    AGENT_ERROR = "agent_error"
    PROTOCOL_ERROR = "protocol_error"
    BUSY = "busy"
    CONFIG = "config"
    CONTROLLER_ERROR = "controller_error"
    """Not the node's fault: a bug (or local failure) in the controller while working on that node."""
