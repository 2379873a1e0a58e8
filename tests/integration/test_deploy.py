"""Deploying the agent over SFTP: only when absent, verified on the node, tampering caught."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sshd import SshdFleet

from fleet_tui.config.inventory import Node
from fleet_tui.fleet.deploy import AgentBundle, build_agent_zipapp, deploy_agent
from fleet_tui.fleet.transport import open_transport

pytestmark = pytest.mark.sshd

Factory = Callable[[int], SshdFleet]


@pytest.fixture
def bundle(tmp_path: Path) -> AgentBundle:
    return build_agent_zipapp(tmp_path / "agent-cache")


async def test_second_deploy_uploads_nothing(sshd_fleet: Factory, bundle: AgentBundle) -> None:
    fleet = sshd_fleet(1)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    try:
        first = await deploy_agent(transport, bundle)
        second = await deploy_agent(transport, bundle)
    finally:
        await transport.close()
    remote = fleet.home(0) / ".fleet-agent" / bundle.name
    assert (first.status, first.bytes) == ("uploaded", bundle.path.stat().st_size)
    assert first.remote_path == str(remote)
    assert remote.read_bytes() == bundle.path.read_bytes()
    assert (second.status, second.bytes) == ("present", 0)
    assert sorted(p.name for p in remote.parent.iterdir()) == [bundle.name]  # no temp files left


async def test_tampered_agent_is_detected_and_replaced(sshd_fleet: Factory, bundle: AgentBundle) -> None:
    fleet = sshd_fleet(1)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    try:
        await deploy_agent(transport, bundle)
        remote = fleet.home(0) / ".fleet-agent" / bundle.name
        data = bytearray(remote.read_bytes())
        data[: len(b"#!/usr/bin/env python3")] = b"#!/usr/bin/env python4"  # same size: only a hash sees it
        remote.write_bytes(bytes(data))

        # The agent itself refuses to run from tampered bytes.
        ran = await transport.run([fleet.nodes[0].python, "-u", str(remote), "probe"])
        events = [json.loads(line) for line in ran.stdout.splitlines()]
        assert ran.exit_status == 3
        assert events[0]["type"] == "error" and events[0]["code"] == "agent_tampered"

        again = await deploy_agent(transport, bundle)
        assert again.status == "replaced_tampered" and again.bytes == bundle.path.stat().st_size
        assert remote.read_bytes() == bundle.path.read_bytes()
        healthy = await transport.run([fleet.nodes[0].python, "-u", str(remote), "version"])
        assert healthy.exit_status == 0
    finally:
        await transport.close()


async def test_deploy_to_local_node(local_node: Node, isolated_home: Path, bundle: AgentBundle) -> None:
    from fleet_tui.fleet.transport.base import SshSettings

    transport = open_transport(local_node, SshSettings())
    first = await deploy_agent(transport, bundle)
    second = await deploy_agent(transport, bundle)
    assert first.remote_path == str(isolated_home / ".fleet-agent" / bundle.name)
    assert (first.status, second.status, second.bytes) == ("uploaded", "present", 0)
