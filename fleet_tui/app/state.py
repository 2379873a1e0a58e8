"""What the TUI knows about one node: the inventory entry plus its latest probe, if any.

Pure data and the TUI's labels (built on `fleet_tui.display`), no widgets, so the table and the
detail panel agree on what a "status" is and tests can check the wording without drawing anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet_tui import display
from fleet_tui.display import (
    MISSING,
    clip,
    format_cores,
    format_load,
    format_memory,
    format_power,
    format_rtt_ms,
    show,
)
from fleet_tui.fleet.transport.base import NodeErrorKind

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node
    from fleet_tui.fleet.probe import ProbeResult


PROBING = "probing…"
"""Status of a node whose probe is in flight."""


@dataclass
class NodeState:
    """The latest the TUI knows about one node."""

    node: Node
    """The inventory entry (the row exists before any probe answers)."""
    result: ProbeResult | None = None
    """The last probe result, kept while a re-probe runs so the facts do not blink away."""
    probing: bool = False
    """True while a probe of this node is in flight."""
    aborted: str | None = None
    """Set when the probe worker crashed before this node answered (a bug, not a node fault)."""
    probed_at: str | None = None
    """When the last probe answered (UTC, ISO seconds), shown in the detail pane."""
    recent_runs: tuple[str, ...] = ()
    """The node's latest stored runs with their verdict counts, one line each (newest first)."""
    actions: dict[str, str] | None = None
    """The last outcome of each per-node action (deploy, selftest), or "running…" while it runs."""

    @property
    def status(self) -> str:
        """One word for the status column: probing…, ok, an error kind, or not probed."""
        if self.probing:
            return PROBING
        if self.aborted is not None:
            return "error"
        if self.result is None:
            return "not probed"
        if self.result.ok:
            return "ok"
        if self.result.error is not None:
            return str(self.result.error.kind.value)
        return "failed"

    @property
    def error_kind(self) -> NodeErrorKind | None:
        """The kind of the last failure, or None when the last probe was fine (or none ran)."""
        if self.result is None or self.result.ok or self.result.error is None:
            return None
        return self.result.error.kind

    @property
    def facts(self) -> dict[str, Any]:
        """The last facts seen (empty when none), so formatting never has to test for None."""
        if self.result is None or self.result.facts is None:
            return {}
        return dict(self.result.facts)


def format_os(facts: dict[str, Any]) -> str:
    """The OS label of the table (`display.format_os`, clipped to its column)."""
    return clip(display.format_os(facts), 20)


def format_agent(state: NodeState) -> str:
    """Short agent sha plus what deploy did ("3fa2b9c1 present")."""
    result = state.result
    if result is None:
        return MISSING
    sha = (result.hello or {}).get("agent_sha")
    parts = [str(sha)[:8]] if sha else []
    if result.deploy is not None:
        parts.append(str(result.deploy.status))
    return " ".join(parts) if parts else MISSING


def format_rtt(state: NodeState) -> str:
    """Round-trip time in milliseconds."""
    if state.result is None or state.result.rtt_ms is None:
        return MISSING
    return format_rtt_ms(state.result.rtt_ms)


__all__ = [
    "MISSING",
    "PROBING",
    "NodeState",
    "clip",
    "fleet_totals",
    "matches",
    "format_agent",
    "format_cores",
    "format_load",
    "format_memory",
    "format_os",
    "format_power",
    "format_rtt",
    "show",
]


def fleet_totals(states: Iterable[NodeState]) -> str:
    """The Fleet screen's status bar: nodes up / failed, chips present, the fleet's hourly cost."""
    states = list(states)
    up = sum(1 for s in states if s.status == "ok")
    failed = sum(1 for s in states if not s.probing and s.status not in ("ok", "not probed"))
    chips = Counter(str(s.facts["chip"]) for s in states if s.status == "ok" and s.facts.get("chip"))
    chip_text = ", ".join(f"{clip(display.clean(chip, 40), 26)} ×{n}" for chip, n in sorted(chips.items()))
    priced = [s.node.hourly_usd for s in states if s.node.hourly_usd is not None]
    cost = f"fleet ${sum(priced):.2f}/h" if priced else "cost: no hourly_usd in the inventory"
    if priced and len(priced) < len(states):
        cost += f" ({len(priced)} of {len(states)} priced)"
    return f"{up} up · {failed} failed · chips: {chip_text or MISSING} · {cost}"


def matches(state: NodeState, needle: str) -> bool:
    """The `/` filter: a case-insensitive substring of name, tier, chip, status or a tag."""
    if not needle:
        return True
    hay = [state.node.name, state.node.tier or "", str(state.facts.get("chip", "")), state.status]
    hay.extend(state.node.tags)
    lowered = needle.lower()
    return any(lowered in text.lower() for text in hay)
