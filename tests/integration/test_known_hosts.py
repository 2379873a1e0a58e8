"""known_hosts as the operator's input, over a real sshd: revoked keys, unusable paths.

A key known_hosts marks `@revoked` is refused and never written, even with
--accept-new-host-keys, and the message says "revoked" (not "changed"). A --known-hosts that is a
directory, lies under a file, or cannot be written is the operator's config error: exit 2 naming
the path, before any node is contacted (not every node `unreachable`, exit 3).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sshd import SshdFleet

from fleet_tui.config.inventory import save_inventory
from fleet_tui.fleet.transport import open_transport
from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind
from fleet_tui.fleet.transport.hostkeys import fetch_host_key, trust_host_key

pytestmark = pytest.mark.sshd

Factory = Callable[[int], SshdFleet]


def _revoked_known_hosts(fleet: SshdFleet, pattern: str | None = None) -> Path:
    """known_hosts revoking node 0's real host key (for its host:port, or for `pattern`)."""
    path = fleet.root / "known_hosts.revoked"
    sshd = fleet.sshds[0]
    host = pattern or f"[{sshd.address}]:{sshd.port}"
    path.write_text(f"@revoked {host} {sshd.host_public_key()}\n")
    return path


@pytest.mark.parametrize("pattern", [None, "*"], ids=["host", "wildcard"])
async def test_a_revoked_key_is_refused_and_never_written_even_when_accepting_new_keys(
    sshd_fleet: Factory, pattern: str | None
) -> None:
    fleet = sshd_fleet(1)
    known_hosts = _revoked_known_hosts(fleet, pattern)
    before = known_hosts.read_text()
    settings = replace(fleet.settings, known_hosts=known_hosts, accept_new_host_keys=True)
    with pytest.raises(NodeError) as info:
        await open_transport(fleet.nodes[0], settings).connect()
    assert info.value.kind is NodeErrorKind.HOST_KEY_REVOKED
    assert "REVOKED" in info.value.message and "CHANGED" not in info.value.message
    assert info.value.fingerprint is not None and info.value.fingerprint in info.value.message
    assert known_hosts.read_text() == before

    # The TUI's review-and-trust path refuses it as well.
    offered = await fetch_host_key(fleet.nodes[0], settings)
    with pytest.raises(NodeError) as refused:
        await trust_host_key(offered, known_hosts)
    assert refused.value.kind is NodeErrorKind.HOST_KEY_REVOKED
    assert known_hosts.read_text() == before


async def test_an_unusable_known_hosts_is_a_config_error_naming_the_path(
    sshd_fleet: Factory, tmp_path: Path
) -> None:
    fleet = sshd_fleet(1)
    folder = tmp_path / "kh-dir"
    folder.mkdir()
    with pytest.raises(NodeError) as info:
        await open_transport(fleet.nodes[0], replace(fleet.settings, known_hosts=folder)).connect()
    assert info.value.kind is NodeErrorKind.CONFIG
    assert str(folder) in info.value.message and "directory" in info.value.message


def _probe(fleet: SshdFleet, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "fleet.toml"
    save_inventory(fleet.nodes, inventory)
    return subprocess.run(
        [sys.executable, "-m", "fleet_tui", "probe", "--inventory", str(inventory)]
        + ["--db", str(tmp_path / "x.db"), "--connect-timeout", "5", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("case", ["directory", "under-a-file", "unwritable"])
def test_probe_with_an_unusable_known_hosts_exits_2_naming_it(
    sshd_fleet: Factory, tmp_path: Path, case: str
) -> None:
    fleet = sshd_fleet(1)
    flags: list[str] = []
    if case == "directory":
        known_hosts = tmp_path / "kh-dir"
        known_hosts.mkdir()
    elif case == "under-a-file":
        (tmp_path / "plain").write_text("")
        known_hosts = tmp_path / "plain" / "known_hosts"
    else:
        # A folder nobody may create files in, even root (sysfs): like a read-only mount.
        if not Path("/sys/kernel").is_dir():
            pytest.skip("needs Linux sysfs for a folder root cannot write")
        known_hosts = Path("/sys/fleet-tui-known_hosts")
        flags = ["--accept-new-host-keys"]  # only trusting a key needs to write
    result = _probe(fleet, tmp_path, "--known-hosts", str(known_hosts), *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"known_hosts {known_hosts} cannot be" in result.stderr
    assert "unreachable" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()  # nothing was contacted or recorded


def test_probe_without_accepting_needs_only_a_readable_known_hosts(
    sshd_fleet: Factory, tmp_path: Path
) -> None:
    fleet = sshd_fleet(1)
    result = _probe(fleet, tmp_path, "--known-hosts", str(fleet.known_hosts))
    assert result.returncode == 0, result.stdout + result.stderr
