"""Probe the fleet: every node concurrently, results as they complete, one node's failure alone.

Per node: connect (reused when warm) -> measure a round trip -> deploy the agent (once per
session) -> run the agent's `probe` -> its facts. `rtt_ms` is the wall time of running `true`
on the node over the open connection (an SSH channel open + exec + exit round trip; for the
local node, a process spawn).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet_tui.config.settings import SshSettings
from fleet_tui.fleet.deploy import DeployResult
from fleet_tui.fleet.session import FleetConnections, run_agent_command
from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind, as_node_error

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node
    from fleet_tui.fleet.transport.base import HostKeyInfo


@dataclass
class ProbeResult:
    node: Node
    ok: bool
    hello: dict[str, Any] | None
    facts: dict[str, Any] | None
    error: NodeError | None
    rtt_ms: float | None
    seconds: float
    deploy: DeployResult | None
    tier_note: str | None
    host_key_accepted: HostKeyInfo | None = None
    """A new host key this probe trusted (accept_new_host_keys); the operator must see it."""

    def to_dict(self) -> dict[str, Any]:
        """The result as one JSON object (for `probe --json`)."""
        accepted = self.host_key_accepted
        return {
            "node": self.node.name,
            "host": self.node.host,
            "transport": self.node.transport,
            "ok": self.ok,
            "error": self.error.to_dict() if self.error else None,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 3),
            "seconds": round(self.seconds, 4),
            "tier": self.node.tier,
            "tier_note": self.tier_note,
            "deploy": self.deploy.to_dict() if self.deploy else None,
            "host_key_accepted": (
                {"fingerprint": accepted.fingerprint, "line": accepted.line.strip()} if accepted else None
            ),
            "hello": self.hello,
            "facts": self.facts,
        }


def _normalise_chip(text: str) -> str:
    words = text.replace("(R)", "").replace("(TM)", "").split()
    if words and words[0].lower() == "apple":
        words = words[1:]
    return " ".join(words).casefold()


def tier_note(tier: str | None, chip: str | None) -> str | None:
    """A note when the inventory's tier is not the chip the node reports (the chip is the truth)."""
    if not tier or not chip:
        return None
    if _normalise_chip(tier) == _normalise_chip(chip):
        return None
    return f"inventory says {tier}, node reports {chip}"


async def probe_node(node: Node, connections: FleetConnections) -> ProbeResult:
    """Probe one node. Never raises for the node's own failures: they are in the result."""
    started = time.perf_counter()
    deployed: DeployResult | None = None
    rtt_ms: float | None = None
    accepted: HostKeyInfo | None = None
    try:
        transport = await connections.transport(node)
        accepted = transport.take_accepted_host_key()
        ping_started = time.perf_counter()
        await transport.run(["true"], timeout=connections.settings.connect_timeout)
        rtt_ms = (time.perf_counter() - ping_started) * 1000
        transport, deployed, hello, events = await run_agent_command(node, connections, "probe")
        facts = next((e.get("facts") for e in events if e["type"] == "facts"), None)
        if not isinstance(facts, dict):
            raise NodeError(NodeErrorKind.PROTOCOL_ERROR, node.name, "agent `probe` sent no facts")
        return ProbeResult(
            node=node,
            ok=True,
            hello=hello,
            facts=facts,
            error=None,
            rtt_ms=rtt_ms,
            seconds=time.perf_counter() - started,
            deploy=deployed,
            tier_note=tier_note(node.tier, facts.get("chip")),
            host_key_accepted=accepted,
        )
    except Exception as exc:  # one node's failure, whatever it is, stays in its own result
        error = as_node_error(exc, node.name, "probe")
        await connections.drop(node)
        return ProbeResult(
            node, False, None, None, error, rtt_ms, time.perf_counter() - started, deployed, None, accepted
        )


async def probe_fleet(
    nodes: Sequence[Node], settings: SshSettings, connections: FleetConnections | None = None
) -> AsyncGenerator[ProbeResult, None]:
    """Probe every node concurrently; yield each result as it completes.

    With `connections`, reuse (and keep) its warm connections; without, open fresh ones and
    close them at the end.
    """
    owned = connections is None
    pool = connections if connections is not None else FleetConnections(settings)
    tasks = [asyncio.create_task(probe_node(node, pool), name=f"probe:{node.name}") for node in nodes]
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if owned:
            await pool.close()
