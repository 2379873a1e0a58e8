"""Transports against a real OpenSSH sshd fleet on loopback (and the local node)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sshd import SshdFleet, keygen

from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport import open_transport
from fleet_tui.fleet.transport.base import MAX_OUTPUT_BYTES, NodeError, NodeErrorKind, SshSettings
from fleet_tui.fleet.transport.hostkeys import fetch_host_key, trust_host_key
from fleet_tui.fleet.transport.ssh import SshTransport
from node_agent.protocol import MAX_LINE_BYTES, ProtocolError

pytestmark = pytest.mark.sshd

Factory = Callable[[int], SshdFleet]


def _fingerprint(public_key_file: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(public_key_file)], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[1]


async def test_home_is_isolated_and_commands_are_quoted(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    try:
        await transport.connect()
        assert await transport.home() == str(fleet.home(0))
        tricky = ["it's", "a $HOME", "`id`", "; rm -rf /", '"quoted"']
        result = await transport.run(["printf", "%s\\n", *tricky])
        assert result.exit_status == 0
        assert result.stdout.splitlines() == tricky
        echoed = await transport.run(["cat"], input="line one\nline two\n")
        assert echoed.stdout == "line one\nline two\n"
        failed = await transport.run(["sh", "-c", "echo oops >&2; exit 7"])
        assert (failed.exit_status, failed.stderr.strip()) == (7, "oops")
    finally:
        await transport.close()


async def test_connection_is_reused(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    assert isinstance(transport, SshTransport)
    try:
        await transport.connect()
        first = transport._conn
        await transport.run(["true"])
        await transport.connect()
        await transport.run(["true"])
        assert transport._conn is first and transport.is_connected
    finally:
        await transport.close()
    assert transport._conn is None
    # A late stop (e.g. of an agent whose connection already closed) must not reconnect.
    await transport.kill_pid(999_999, "TERM")
    assert not transport.is_connected


async def test_identity_file_with_tilde_is_expanded(sshd_fleet: Factory, isolated_home: Path) -> None:
    fleet = sshd_fleet(1)
    (isolated_home / ".ssh").mkdir()
    shutil.copy(fleet.client_key, isolated_home / ".ssh" / "fleet_key")
    node = replace(fleet.nodes[0], identity_file="~/.ssh/fleet_key")
    transport = open_transport(node, fleet.settings)
    try:
        await transport.connect()  # the key exists only under ~ (the isolated HOME)
        assert (await transport.run(["true"])).exit_status == 0
    finally:
        await transport.close()


async def test_put_file_is_atomic_and_leaves_no_temp(sshd_fleet: Factory, tmp_path: Path) -> None:
    fleet = sshd_fleet(1)
    local = tmp_path / "payload.bin"
    local.write_bytes(bytes(range(256)) * 1000)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    try:
        target = f"{await transport.home()}/payload.bin"
        (fleet.home(0) / "payload.bin").write_bytes(b"old")
        await transport.put_file(local, target)
        assert (fleet.home(0) / "payload.bin").read_bytes() == local.read_bytes()
        assert sorted(p.name for p in fleet.home(0).iterdir()) == ["payload.bin"]
    finally:
        await transport.close()


async def test_started_command_streams_and_terminates(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    try:
        proc = await transport.start(["sh", "-c", "echo ready; echo note >&2; exec sleep 60"])
        lines = proc.lines()
        assert await anext(lines) == "ready"
        # Root sessions refuse SSH signals, so this relies on the pid fallback, which waits for
        # the pid line itself if it has not been read yet. `sleep 60` ending is the check; the
        # wait's limit only bounds a hang (how fast it stops: tests/bench/bench_timings.py).
        proc.terminate()
        status = await proc.wait(30)
        assert status != 0
        assert proc.stderr_text().strip() == "note"
    finally:
        await transport.close()


async def test_killed_sshd_is_unreachable_by_refusal(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(2)
    fleet.kill(0)
    with pytest.raises(NodeError) as info:
        await open_transport(fleet.nodes[0], fleet.settings).connect()
    # refused, not a timeout (how fast: tests/bench/bench_timings.py)
    assert info.value.kind is NodeErrorKind.UNREACHABLE
    assert "refused" in info.value.message
    other = open_transport(fleet.nodes[1], fleet.settings)
    await other.connect()
    await other.close()
    fleet.restart(0)
    back = open_transport(fleet.nodes[0], fleet.settings)
    await back.connect()  # same port, same host key: known_hosts still matches
    await back.close()


async def test_silent_server_times_out(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        node = replace(fleet.nodes[0], host="127.0.0.1", port=listener.getsockname()[1])
        settings = replace(fleet.settings, connect_timeout=1.0)
        with pytest.raises(NodeError) as info:
            await open_transport(node, settings).connect()
    # the configured timeout is the one that ended it (its wall time: tests/bench/bench_timings.py)
    assert info.value.kind is NodeErrorKind.TIMEOUT
    assert "within the 1 s connect timeout" in info.value.message


async def test_wrong_client_key_is_auth_failed(sshd_fleet: Factory, tmp_path: Path) -> None:
    fleet = sshd_fleet(1)
    stranger = tmp_path / "stranger_key"
    keygen(stranger, "stranger")
    node = replace(fleet.nodes[0], identity_file=str(stranger))
    with pytest.raises(NodeError) as info:
        await open_transport(node, fleet.settings).connect()
    assert info.value.kind is NodeErrorKind.AUTH_FAILED
    missing = replace(fleet.nodes[0], identity_file=str(tmp_path / "absent"))
    with pytest.raises(NodeError) as info:
        await open_transport(missing, fleet.settings).connect()
    assert info.value.kind is NodeErrorKind.CONFIG and "absent" in info.value.message


async def test_unknown_host_key_is_refused_then_trusted_explicitly(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    known_hosts = fleet.empty_known_hosts()
    settings = replace(fleet.settings, known_hosts=known_hosts)
    expected = _fingerprint(fleet.sshds[0].host_key.with_suffix(".pub"))
    with pytest.raises(NodeError) as info:
        await open_transport(fleet.nodes[0], settings).connect()
    assert info.value.kind is NodeErrorKind.HOST_KEY_UNKNOWN
    assert info.value.fingerprint == expected and expected in info.value.message
    assert known_hosts.read_text() == ""  # refusing trusts nothing

    accepting = open_transport(fleet.nodes[0], replace(settings, accept_new_host_keys=True))
    assert isinstance(accepting, SshTransport)
    await accepting.connect()
    await accepting.close()
    assert accepting.accepted_host_key is not None
    assert accepting.accepted_host_key.fingerprint == expected
    assert known_hosts.read_text() == fleet.sshds[0].known_hosts_line()

    strict_again = open_transport(fleet.nodes[0], settings)  # now trusted without the flag
    await strict_again.connect()
    await strict_again.close()


async def test_tui_path_fetch_then_trust(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    settings = replace(fleet.settings, known_hosts=fleet.empty_known_hosts())
    info = await fetch_host_key(fleet.nodes[0], settings)
    assert info.fingerprint == _fingerprint(fleet.sshds[0].host_key.with_suffix(".pub"))
    await trust_host_key(info, settings.known_hosts_path())
    await trust_host_key(info, settings.known_hosts_path())  # idempotent
    assert settings.known_hosts_path().read_text() == fleet.sshds[0].known_hosts_line()
    transport = open_transport(fleet.nodes[0], settings)
    await transport.connect()
    await transport.close()


async def test_changed_host_key_is_always_refused(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    known_hosts = fleet.wrong_known_hosts()
    before = known_hosts.read_text()
    settings = replace(fleet.settings, known_hosts=known_hosts, accept_new_host_keys=True)
    with pytest.raises(NodeError) as info:
        await open_transport(fleet.nodes[0], settings).connect()
    assert info.value.kind is NodeErrorKind.HOST_KEY_CHANGED
    assert info.value.fingerprint == _fingerprint(fleet.sshds[0].host_key.with_suffix(".pub"))
    assert "CHANGED" in info.value.message
    assert known_hosts.read_text() == before
    fetched = await fetch_host_key(fleet.nodes[0], settings)
    with pytest.raises(NodeError) as refused:
        await trust_host_key(fetched, known_hosts)  # the TUI path refuses to overwrite too
    assert refused.value.kind is NodeErrorKind.HOST_KEY_CHANGED
    assert known_hosts.read_text() == before


async def test_local_transport(local_node: Node, isolated_home: Path, tmp_path: Path) -> None:
    transport = open_transport(local_node, SshSettings())
    assert await transport.home() == str(isolated_home)
    result = await transport.run(["sh", "-c", 'printf %s "$1"', "sh", "a b'c"])
    assert result.stdout == "a b'c"
    src = tmp_path / "f.txt"
    src.write_text("content")
    await transport.put_file(src, "copied.txt")
    assert (isolated_home / "copied.txt").read_text() == "content"
    assert os.listdir(isolated_home) == ["copied.txt"]
    with pytest.raises(NodeError) as info:
        await transport.run(["sleep", "5"], timeout=0.3)
    assert info.value.kind is NodeErrorKind.TIMEOUT


async def test_a_node_without_sftp_says_so(sshd_fleet: Factory, tmp_path: Path) -> None:
    """An sshd with no `Subsystem sftp` is named as such (a config error, never retried), not
    reported as a lost connection."""
    fleet = sshd_fleet(1)
    config = fleet.sshds[0].config
    lines = config.read_text().splitlines(keepends=True)
    config.write_text("".join(line for line in lines if not line.startswith("Subsystem")))
    fleet.kill(0)
    fleet.restart(0)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"x" * 100)
    try:
        with pytest.raises(NodeError) as caught:
            await transport.put_file(payload, "payload.bin")
        assert caught.value.kind is NodeErrorKind.CONFIG
        assert "no SFTP subsystem" in caught.value.message, caught.value.message
        # The connection itself is fine: commands still run.
        assert (await transport.run(["echo", "ok"])).stdout.strip() == "ok"
    finally:
        await transport.close()


async def test_long_lines_arrive_whole_over_ssh_up_to_the_line_limit(sshd_fleet: Factory) -> None:
    # 9 MB is past asyncssh's 2 MB receive window, where its readline hands back part of a line.
    fleet = sshd_fleet(1)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    script = f"import sys; sys.stdout.write('a' * 9_000_000 + '\\nb\\n' + 'c' * ({MAX_LINE_BYTES} + 1))"
    try:
        proc = await transport.start([sys.executable, "-c", script])
        lines = proc.lines()
        assert await anext(lines) == "a" * 9_000_000
        assert await anext(lines) == "b"
        with pytest.raises(ProtocolError, match="line limit"):
            await anext(lines)
        await proc.wait(30)
    finally:
        await transport.close()


async def test_run_output_past_the_cap_is_refused_over_ssh(sshd_fleet: Factory) -> None:
    fleet = sshd_fleet(1)
    transport = open_transport(fleet.nodes[0], fleet.settings)
    try:
        with pytest.raises(NodeError) as info:
            await transport.run(["sh", "-c", "yes zzzzzzzz"], timeout=60)
        assert info.value.kind is NodeErrorKind.PROTOCOL_ERROR
        assert f"more than {MAX_OUTPUT_BYTES} bytes on stdout" in info.value.message
        # The connection is still fine for the next command, and input still reaches it.
        result = await transport.run(["cat"], input="still here", timeout=30)
        assert (result.exit_status, result.stdout) == (0, "still here")
    finally:
        await transport.close()
