"""The connection pool of a session: one reused transport per node, the agent deployed once.

`FleetConnections.transport` retries a failed connect a few times with jittered exponential
backoff, per host, so a fleet restarting together does not hammer its nodes in lockstep.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fleet_tui.config.settings import SshSettings
from fleet_tui.fleet.agent import agent_events
from fleet_tui.fleet.deploy import AgentBundle, DeployResult, build_agent_zipapp, deploy_agent
from fleet_tui.fleet.transport import open_transport
from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind, Transport

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node


CONNECT_RETRIES = 2
"""Extra connect attempts for an `unreachable` node (so 3 in all) before the failure is reported."""
CONNECT_BACKOFF_S = 0.25
"""The first retry's mean pause; each further retry doubles it."""


def connect_backoff_s(attempt: int, rng: random.Random) -> float:
    """Pause before retry `attempt` (0-based): "full jitter", uniform in [0, 2 x base x 2^attempt]."""
    return rng.uniform(0.0, 2 * CONNECT_BACKOFF_S * 2**attempt)


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
        self._jitter = random.Random()

    def bundle(self) -> AgentBundle:
        """The agent zipapp of this session (built once)."""
        if self._bundle is None:
            self._bundle = build_agent_zipapp(self._agent_cache_dir)
        return self._bundle

    def is_warm(self, node: Node) -> bool:
        transport = self._transports.get(node.name)
        return transport is not None and transport.is_connected

    async def transport(self, node: Node) -> Transport:
        """The node's connected transport (connecting once).

        A connect that fails as `unreachable` (refused, reset, no route: often a node that is
        rebooting or an sshd at MaxStartups) is retried up to CONNECT_RETRIES times, after a
        jittered exponential pause per host, so nodes that fail together do not retry in step.
        Every other failure (timeout, auth, host key, config) is final at once.
        """
        lock = self._locks.setdefault(node.name, asyncio.Lock())
        async with lock:
            transport = self._transports.get(node.name)
            if transport is None or transport.node != node:
                if transport is not None:
                    await transport.close()
                transport = open_transport(node, self.settings)
                self._transports[node.name] = transport
            for attempt in range(CONNECT_RETRIES + 1):
                try:
                    await transport.connect()
                    return transport
                except NodeError as exc:
                    if exc.kind is not NodeErrorKind.UNREACHABLE or attempt == CONNECT_RETRIES:
                        raise
                await asyncio.sleep(connect_backoff_s(attempt, self._jitter))
            raise AssertionError("unreachable")  # the loop returns or raises

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


COMMAND_IDLE_S: Final = 120.0
"""The longest silence of a short agent command (probe, version): facts take a few seconds."""
COMMAND_DEADLINE_S: Final = 600.0
COMMAND_MAX_EVENTS: Final = 1000
"""A probe sends three events; a node sending thousands is not answering the question."""


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
    stream = agent_events(transport, remote, command, idle_s=COMMAND_IDLE_S, deadline_s=COMMAND_DEADLINE_S)
    async with contextlib.aclosing(stream) as events_in:
        async for event in events_in:
            kind = event["type"]
            if len(events) >= COMMAND_MAX_EVENTS:
                raise NodeError(
                    NodeErrorKind.PROTOCOL_ERROR,
                    node.name,
                    f"agent `{command}` sent more than {COMMAND_MAX_EVENTS} events; stopped it",
                )
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
