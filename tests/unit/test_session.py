"""The connection pool's retry: only `unreachable` is retried, with jittered exponential pauses."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Iterator

import pytest

from fleet_tui.config.inventory import Node
from fleet_tui.config.settings import SshSettings
from fleet_tui.fleet.session import CONNECT_BACKOFF_S, CONNECT_RETRIES, FleetConnections, connect_backoff_s
from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind


def test_backoff_is_full_jitter_doubling_per_attempt() -> None:
    rng = random.Random(7)
    for attempt in range(4):
        pauses = [connect_backoff_s(attempt, rng) for _ in range(500)]
        cap = 2 * CONNECT_BACKOFF_S * 2**attempt
        assert all(0.0 <= p <= cap for p in pauses)
        assert max(pauses) > 0.8 * cap and min(pauses) < 0.2 * cap  # spread over the whole range
    # Two hosts failing together do not retry in step.
    assert connect_backoff_s(0, random.Random(1)) != connect_backoff_s(0, random.Random(2))


@pytest.fixture
def slamming_port() -> Iterator[tuple[int, list[int]]]:
    """A loopback port that accepts each connection and closes it at once (an sshd that drops us)."""
    accepted: list[int] = []
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(5)
    server.close()


async def test_an_unreachable_node_is_tried_again_then_reported(slamming_port: tuple[int, list[int]]) -> None:
    port, accepted = slamming_port
    node = Node(name="n", host="127.0.0.1", port=port, source="test")
    settings = SshSettings(ssh_config=None, use_ssh_agent=False, connect_timeout=5.0)
    async with FleetConnections(settings) as pool:
        with pytest.raises(NodeError) as caught:
            await asyncio.wait_for(pool.transport(node), 60)
    assert caught.value.kind is NodeErrorKind.UNREACHABLE
    assert len(accepted) == CONNECT_RETRIES + 1


def test_a_host_that_does_not_resolve_is_a_config_error_never_retried() -> None:
    import socket

    from fleet_tui.config.inventory import Node
    from fleet_tui.config.settings import SshSettings
    from fleet_tui.fleet.transport.handshake import map_connect_error
    from fleet_tui.model.states import NodeErrorKind
    from fleet_tui.sweep.scheduler import NEVER_RETRIED

    node = Node(name="typo", host="m4pro-a.exmaple.internal")
    error = map_connect_error(node, SshSettings(), socket.gaierror(-2, "Name or service not known"))
    assert error.kind == NodeErrorKind.CONFIG and error.kind in NEVER_RETRIED
    assert "cannot resolve host 'm4pro-a.exmaple.internal'" in error.message
