"""Run the agent's selftest on one node: the checks measurements rely on (clocks, thermal
readers, engines, power readers), shared by `fleet-tui selftest` and the TUI's Fleet screen."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node
    from fleet_tui.fleet.session import FleetConnections


def checks_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The check records of one agent event (`facts` carries them; older agents nest them)."""
    facts = event.get("facts")
    checks = event.get("checks") if "checks" in event else (facts or {}).get("checks")
    return [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []


async def selftest_node(node: Node, pool: FleetConnections) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the agent's selftest on a node: (checks, agent error messages). Raises NodeError."""
    from fleet_tui.fleet.agent import agent_events
    from fleet_tui.fleet.session import COMMAND_DEADLINE_S, COMMAND_IDLE_S, COMMAND_MAX_EVENTS
    from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind

    transport = await pool.transport(node)
    remote, _ = await pool.agent_path(node, transport)
    checks: list[dict[str, Any]] = []
    errors: list[str] = []
    seen = 0
    # The same bounds as any short agent command: a node that goes silent, runs on, or floods
    # events costs its own selftest, never the controller's time or memory.
    stream = agent_events(transport, remote, "selftest", idle_s=COMMAND_IDLE_S, deadline_s=COMMAND_DEADLINE_S)
    async with contextlib.aclosing(stream) as events:
        async for event in events:
            seen += 1
            if seen > COMMAND_MAX_EVENTS:
                raise NodeError(
                    NodeErrorKind.PROTOCOL_ERROR,
                    node.name,
                    f"agent `selftest` sent more than {COMMAND_MAX_EVENTS} events; stopped it",
                )
            if event["type"] == "facts":
                checks.extend(checks_of(event))
            elif event["type"] in ("error", "warning"):
                errors.append(f"{event['type']} {event.get('code')}: {event.get('message')}")
    return checks, errors


def check_counts(checks: Iterable[dict[str, Any]]) -> Counter[str]:
    """How many checks passed, failed and were skipped (other statuses counted by name)."""
    return Counter(str(c.get("status", "?")) for c in checks)
