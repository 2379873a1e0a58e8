"""Process exit codes: the controller's (`ExitCode`) and, re-exported, the agent's (`AgentExit`).

The agent's codes are part of the wire (a `done` event carries one), so they live in
`node_agent.protocol`, which ships to nodes; the controller reads them from there.
"""

from __future__ import annotations

from enum import IntEnum

from node_agent.protocol import AgentExit


class ExitCode(IntEnum):
    """What `fleet-tui` returns. Shown in `fleet-tui --help`; scripts and CI depend on them."""

    OK = 0
    GATE_FAILED = 1
    """A gate failed (sweep) or a selftest check failed (selftest)."""
    BAD_INPUT = 2
    """Bad operator input or config (inventory, spec, flags, store path); also a controller error."""
    INCOMPLETE = 3
    """At least one node fault left work undone (resume with `fleet-tui sweep --resume RUN`)."""
    INTERRUPTED = 130
    """Stopped by SIGINT / SIGTERM (128 + SIGINT, as shells report it)."""


CHECK_FAILED = ExitCode.GATE_FAILED
"""`selftest`: a platform check failed (same code as a failed gate)."""

__all__ = ["CHECK_FAILED", "AgentExit", "ExitCode"]
