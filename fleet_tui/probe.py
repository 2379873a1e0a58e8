"""Probe the fleet: every node concurrently, results as they complete, one node's failure alone.

Per node: connect (reused when warm) -> measure a round trip -> deploy the agent (once per
session) -> run the agent's `probe` -> its facts. `rtt_ms` is the wall time of running `true`
on the node over the open connection (an SSH channel open + exec + exit round trip; for the
local node, a process spawn).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_tui.agent_client import agent_events
from fleet_tui.deploy import AgentBundle, DeployResult, build_agent_zipapp, deploy_agent
from fleet_tui.transport.base import (
    NodeError,
    NodeErrorKind,
    SshSettings,
    Transport,
    as_node_error,
    open_transport,
)

if TYPE_CHECKING:
    from fleet_tui.hostkeys import HostKeyInfo
    from fleet_tui.inventory import Node


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


class FleetConnections:
    """One reused transport per node for a session, plus what was deployed where.

    A connection that failed is dropped, so the next use reconnects. SSH handshakes are capped
    at 8 in flight by the ssh transport itself.
    """

    def __init__(self, settings: SshSettings, *, agent_cache_dir: Path | None = None) -> None:
        self.settings = settings
        self._agent_cache_dir = agent_cache_dir
        self._transports: dict[str, Transport] = {}
        self._deployed: dict[str, DeployResult] = {}
        self._bundle: AgentBundle | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def bundle(self) -> AgentBundle:
        """The agent zipapp of this session (built once)."""
        if self._bundle is None:
            self._bundle = build_agent_zipapp(self._agent_cache_dir)
        return self._bundle

    def is_warm(self, node: Node) -> bool:
        transport = self._transports.get(node.name)
        return transport is not None and transport.is_connected

    async def transport(self, node: Node) -> Transport:
        """The node's connected transport (connecting once)."""
        lock = self._locks.setdefault(node.name, asyncio.Lock())
        async with lock:
            transport = self._transports.get(node.name)
            if transport is None or transport.node != node:
                if transport is not None:
                    await transport.close()
                transport = open_transport(node, self.settings)
                self._transports[node.name] = transport
            await transport.connect()
            return transport

    async def agent_path(self, node: Node, transport: Transport) -> tuple[str, DeployResult]:
        """Deploy the agent once per session; later calls report it "present" without a check."""
        done = self._deployed.get(node.name)
        if done is None:
            done = await deploy_agent(transport, self.bundle())
            self._deployed[node.name] = done
            return done.remote_path, done
        # Already verified this session: report it as present, nothing uploaded.
        return done.remote_path, DeployResult(node.name, "present", 0, 0.0, done.remote_path)

    async def drop(self, node: Node) -> None:
        """Forget a node's connection (after a failure) so the next use reconnects."""
        transport = self._transports.pop(node.name, None)
        self._deployed.pop(node.name, None)
        if transport is not None:
            with contextlib.suppress(Exception):
                await transport.close()

    async def close(self) -> None:
        transports, self._transports = self._transports, {}
        self._deployed.clear()
        await asyncio.gather(*(t.close() for t in transports.values()), return_exceptions=True)

    async def __aenter__(self) -> FleetConnections:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def run_agent_command(
    node: Node, connections: FleetConnections, command: str
) -> tuple[Transport, DeployResult, dict[str, Any] | None, list[dict[str, Any]]]:
    """Connect, deploy, run an agent command: (transport, deploy, hello, other events).

    Agent `error` events and a failed `done` become NodeError (agent_tampered, busy, ...).
    """
    transport = await connections.transport(node)
    remote, deployed = await connections.agent_path(node, transport)
    hello: dict[str, Any] | None = None
    events: list[dict[str, Any]] = []
    errors: list[str] = []
    busy = False
    async with contextlib.aclosing(agent_events(transport, remote, command)) as stream:
        async for event in stream:
            kind = event["type"]
            if kind == "hello":
                hello = event
            elif kind == "error":
                errors.append(f"{event.get('code', 'error')}: {event.get('message', '')}")
            elif kind == "busy":
                busy = True
                errors.append(f"busy: held by {event.get('holder')}")
            elif kind == "done":
                if not event.get("ok", False):
                    raise NodeError(
                        NodeErrorKind.BUSY if busy else NodeErrorKind.AGENT_ERROR,
                        node.name,
                        f"agent `{command}` failed (exit {event.get('exit_code')}): "
                        + ("; ".join(errors) or "no error message"),
                    )
            else:
                events.append(event)
    return transport, deployed, hello, events


def _take_accepted_host_key(transport: Transport) -> HostKeyInfo | None:
    """The host key this transport's connect trusted, reported once (not again on warm probes)."""
    from fleet_tui.transport.ssh import SshTransport

    if not isinstance(transport, SshTransport):
        return None
    accepted, transport.accepted_host_key = transport.accepted_host_key, None
    return accepted


async def probe_node(node: Node, connections: FleetConnections) -> ProbeResult:
    """Probe one node. Never raises for the node's own failures: they are in the result."""
    started = time.perf_counter()
    deployed: DeployResult | None = None
    rtt_ms: float | None = None
    accepted: HostKeyInfo | None = None
    try:
        transport = await connections.transport(node)
        accepted = _take_accepted_host_key(transport)
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
