"""What the TUI knows about one node: the inventory entry plus its latest probe, if any.

Pure data and text formatting, no widgets, so the table and the detail panel agree on what a
"status" is and tests can check the wording without drawing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet_tui.transport.base import NodeErrorKind

if TYPE_CHECKING:
    from fleet_tui.inventory import Node
    from fleet_tui.probe import ProbeResult

MISSING = "—"
"""What an unknown value shows as: never "None", never an empty cell that looks like a bug."""

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


def show(value: object) -> str:
    """A value as cell text, with `MISSING` for None or empty."""
    if value is None or value == "":
        return MISSING
    return str(value)


def format_memory(n_bytes: object) -> str:
    """Bytes as GiB: "16 GiB", "7.7 GiB", "0 GiB"."""
    if not isinstance(n_bytes, int | float) or isinstance(n_bytes, bool) or n_bytes < 0:
        return MISSING
    gib = n_bytes / 2**30
    return f"{gib:.0f} GiB" if abs(gib - round(gib)) < 0.05 else f"{gib:.1f} GiB"


def format_cores(facts: dict[str, Any]) -> str:
    """Performance/efficiency cores ("8P/4E") on Apple Silicon, else the total count."""
    p, e = facts.get("cores_p"), facts.get("cores_e")
    if isinstance(p, int) and isinstance(e, int):
        return f"{p}P/{e}E"
    return show(facts.get("cores_total"))


_OS_NAMES = {"macos": "macOS", "linux": "Linux"}


def format_os(facts: dict[str, Any]) -> str:
    """Short: "macOS 14.5", or "Linux 6.1.0" (kernel; the distribution is in the detail panel)."""
    os_name = facts.get("os")
    if not os_name:
        return MISSING
    pretty = _OS_NAMES.get(str(os_name), str(os_name))
    if os_name == "macos":
        version = facts.get("os_version")
    else:
        kernel = facts.get("kernel")
        version = str(kernel).split("-")[0] if kernel else facts.get("os_version")
    return clip(f"{pretty} {version}", 20) if version else pretty


def format_power(facts: dict[str, Any]) -> str:
    """ "ac", "battery", plus "low-power" when Low Power Mode is on."""
    source = facts.get("power_source")
    text = show(source)
    if facts.get("low_power_mode"):
        text = "low-power" if source is None else f"{text} low-power"
    return text


def format_load(facts: dict[str, Any]) -> str:
    """The 1-minute load average."""
    load = facts.get("load_avg")
    if isinstance(load, list | tuple) and load and isinstance(load[0], int | float):
        return f"{load[0]:.2f}"
    return MISSING


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
    rtt = state.result.rtt_ms
    return f"{rtt:.1f} ms" if rtt < 10 else f"{rtt:.0f} ms"


def clip(text: str, width: int) -> str:
    """Shorten to `width` cells with an ellipsis, so one long CPU model cannot push columns off."""
    return text if len(text) <= width else text[: width - 1] + "…"
