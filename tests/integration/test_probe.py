"""Probing a real fleet: all nodes at once, each failure reported for its own node only."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sshd import SshdFleet

from fleet_tui.cli.fleet import probe_and_print
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.probe import ProbeResult, probe_fleet
from fleet_tui.fleet.session import FleetConnections
from fleet_tui.fleet.transport.base import NodeErrorKind

pytestmark = pytest.mark.sshd

Factory = Callable[[int], SshdFleet]
VENV_BIN = Path(sys.executable).parent


async def _probe(
    nodes: list[Node], fleet: SshdFleet, pool: FleetConnections | None = None
) -> dict[str, ProbeResult]:
    return {r.node.name: r async for r in probe_fleet(nodes, fleet.settings, pool)}


def _fake_python(home: Path, body: str) -> str:
    """A real misbehaving interpreter: runs `python -c` (deploy's hash check), misbehaves on the agent."""
    path = home / "fake-python"
    path.write_text(f'#!/bin/sh\ncase "$1" in -c) exec {sys.executable} "$@";; esac\n{body}\n')
    path.chmod(0o755)
    return str(path)


async def test_probe_three_ssh_nodes_and_local(sshd_fleet: Factory, local_node: Node) -> None:
    fleet = sshd_fleet(3)
    nodes = [*fleet.nodes, local_node]
    async with FleetConnections(fleet.settings) as pool:
        cold = await _probe(nodes, fleet, pool)
        assert set(cold) == {"ssh0", "ssh1", "ssh2", "local"}
        for name, result in cold.items():
            assert result.ok, (name, result.error)
            assert result.facts is not None and result.hello is not None
            assert result.facts["cores_total"] == os.cpu_count()
            assert isinstance(result.facts["memory_bytes"], int) and result.facts["memory_bytes"] > 0
            assert result.hello["agent_sha"] == pool.bundle().sha256
            assert result.deploy is not None and result.deploy.status == "uploaded"
            assert result.rtt_ms is not None and result.rtt_ms > 0
            assert result.tier_note is None
        assert all(pool.is_warm(n) for n in fleet.nodes)

        warm = await _probe(nodes, fleet, pool)
        assert all(r.ok for r in warm.values())
        assert {r.deploy.status for r in warm.values() if r.deploy} == {"present"}
        assert all(r.deploy is not None and r.deploy.bytes == 0 for r in warm.values())


async def test_killed_node_is_unreachable_while_others_succeed(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(3)
    fleet.kill(1)
    results = await _probe(fleet.nodes, fleet, None)
    dead = results["ssh1"]
    assert not dead.ok and dead.error is not None
    # refused at once, not left to the connect timeout (how fast: tests/bench/bench_timings.py)
    assert dead.error.kind is NodeErrorKind.UNREACHABLE and "refused" in dead.error.message
    assert results["ssh0"].ok and results["ssh2"].ok


async def test_node_killed_while_warm_is_reported_then_recovers(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(2)
    async with FleetConnections(fleet.settings) as pool:
        assert all(r.ok for r in (await _probe(fleet.nodes, fleet, pool)).values())
        fleet.kill(0)  # drops the warm connection too
        results = await _probe(fleet.nodes, fleet, pool)
        assert results["ssh0"].error is not None
        assert results["ssh0"].error.kind is NodeErrorKind.UNREACHABLE
        assert results["ssh1"].ok
        fleet.restart(0)
        assert (await _probe(fleet.nodes, fleet, pool))["ssh0"].ok


async def test_garbage_and_dying_agents_are_reported_per_node(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(3)
    garbage = _fake_python(fleet.home(0), 'echo "Segmentation fault (not JSON)"; exec sleep 60.123')
    dying = _fake_python(fleet.home(1), 'echo "fatal: agent crashed" >&2; exit 1')
    nodes = [replace(fleet.nodes[0], python=garbage), replace(fleet.nodes[1], python=dying), fleet.nodes[2]]
    results = await _probe(nodes, fleet)
    bad = results["ssh0"].error
    assert bad is not None and bad.kind is NodeErrorKind.PROTOCOL_ERROR
    assert "Segmentation fault (not JSON)" in bad.message and bad.node == "ssh0"
    died = results["ssh1"].error
    assert died is not None and died.kind is NodeErrorKind.AGENT_ERROR
    assert "status 1" in died.message and "fatal: agent crashed" in died.message
    assert results["ssh2"].ok
    leftover = await asyncio.to_thread(
        subprocess.run, ["pgrep", "-f", "sleep 60.123"], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == "", "the garbage agent was left running"


async def test_tier_disagreement_is_noted(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    node = replace(fleet.nodes[0], tier="M2 Pro")
    result = (await _probe([node], fleet))["ssh0"]
    assert result.ok and result.facts is not None
    assert result.tier_note == f"inventory says M2 Pro, node reports {result.facts['chip']}"


async def test_probe_output_lines_and_exit_codes(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(2)
    out, err = io.StringIO(), io.StringIO()
    assert await probe_and_print(fleet.nodes, fleet.settings, as_json=True, out=out, err=err) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["type"] for r in records] == ["result", "result", "summary"]
    assert records[-1]["ok"] == 2 and records[-1]["failed"] == {}
    assert {r["node"] for r in records[:2]} == {"ssh0", "ssh1"}
    assert all(r["facts"]["chip"] for r in records[:2])

    fleet.kill(1)
    human = io.StringIO()
    assert await probe_and_print(fleet.nodes, fleet.settings, as_json=False, out=human, err=err) == 3
    lines = human.getvalue().splitlines()
    assert lines[0].startswith("NODE")
    assert any(line.startswith("ssh1") and "unreachable: connection refused" in line for line in lines)
    assert lines[-1].startswith("ok 1, failed 1 (unreachable 1) in ")


def _inventory_toml(fleet: SshdFleet, path: Path) -> Path:
    blocks = [
        f'[[node]]\nname = "{n.name}"\nhost = "{n.host}"\nport = {n.port}\nuser = "root"\n'
        f'identity_file = "{n.identity_file}"\npython = "{n.python}"\n'
        for n in fleet.nodes
    ]
    path.write_text("\n".join(blocks))
    return path


def test_cli_accepts_new_host_keys_only_when_asked(
    sshd_fleet: Factory, tmp_path: Path, isolated_home: Path
) -> None:
    fleet = sshd_fleet(1)
    inventory = _inventory_toml(fleet, tmp_path / "fleet.toml")
    known_hosts = fleet.empty_known_hosts()
    base = [
        str(VENV_BIN / "fleet-tui"),
        "probe",
        "--inventory",
        str(inventory),
        "--known-hosts",
        str(known_hosts),
    ]
    env = {**os.environ, "HOME": str(isolated_home)}

    refused = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 3
    record = json.loads(refused.stdout.splitlines()[0])
    assert record["error"]["kind"] == "host_key_unknown"
    assert record["error"]["fingerprint"].startswith("SHA256:")
    assert known_hosts.read_text() == ""

    accepted = subprocess.run(
        [*base, "--accept-new-host-keys"], capture_output=True, text=True, env=env, timeout=60
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert record["error"]["fingerprint"] in accepted.stdout  # the operator sees what was trusted
    assert known_hosts.read_text() == fleet.sshds[0].known_hosts_line()

    bad = tmp_path / "bad.toml"
    bad.write_text('[[node]]\nname = "x"\nhost = "h"\nport = "twenty-two"\n')
    wrong = subprocess.run(
        [*base[:2], "--inventory", str(bad)], capture_output=True, text=True, env=env, timeout=60
    )
    assert wrong.returncode == 2
    assert str(bad) in wrong.stderr and "port" in wrong.stderr
