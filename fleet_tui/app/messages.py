"""Messages the TUI's background workers post back to the screens.

Workers never touch widgets: they post one of these and the screen's handler updates the table.
A screen posts them to itself, so none bubbles (`bubble=False`): no other node acts on them.
That keeps every widget mutation on the app's own task, and lets tests assert on what happened
(``app.run_test(message_hook=...)``) rather than only on what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from fleet_tui.fleet.probe import ProbeResult


@dataclass
class NodeProbed(Message, bubble=False):
    """One node's probe finished, ok or not. Posted as each node completes, not at the end."""

    result: ProbeResult
    """What the probe found (facts, agent, RTT) or why it failed."""


@dataclass
class ProbeAborted(Message, bubble=False):
    """A probe worker died of an unexpected exception (a bug, not a node fault).

    Node faults arrive as `NodeProbed` with an error; this is for the rest, so rows that were
    still "probing…" say what happened instead of waiting forever.
    """

    names: tuple[str, ...]
    """Nodes whose result never arrived."""
    message: str
    """The exception, as text."""


@dataclass
class HostKeyTrusted(Message, bubble=False):
    """The operator accepted a node's host key and it was appended to known_hosts."""

    name: str
    """The node whose key was trusted."""
    fingerprint: str
    """The SHA256 fingerprint that was written."""


@dataclass
class NodeActionDone(Message, bubble=False):
    """A per-node action (deploy, selftest) finished; `text` says what it found, in words."""

    name: str
    """The node's inventory name."""
    action: str
    """"deploy" or "selftest"."""
    text: str
    """The outcome, one line (node-supplied parts already sanitised)."""
    ok: bool
    """False when the action failed or a check failed."""
