"""Shared fixtures: a real OpenSSH sshd fleet on loopback, and an isolated local node.

Without /usr/sbin/sshd the sshd tests skip (saying why), except in CI
(FLEET_TUI_REQUIRE_SSHD=1), where a missing sshd is an error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `sshd` (tests/ is not a package)

from sshd import SshdFleet, sshd_missing_reason  # noqa: E402

from fleet_tui.config.inventory import Node  # noqa: E402

SshdFleetFactory = Callable[[int], SshdFleet]


def _require_sshd() -> None:
    reason = sshd_missing_reason()
    if reason is None:
        return
    if os.environ.get("FLEET_TUI_REQUIRE_SSHD") == "1":
        pytest.fail(f"FLEET_TUI_REQUIRE_SSHD=1 but the sshd fleet cannot run: {reason}")
    pytest.skip(f"no sshd fleet: {reason}")


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME (and XDG dirs, SSH_AUTH_SOCK) pointed away from the developer's own."""
    home = tmp_path / "controller-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture
def sshd_fleet(tmp_path: Path, isolated_home: Path) -> Iterator[SshdFleetFactory]:
    """Factory: `sshd_fleet(n)` starts n sshd nodes (torn down after the test)."""
    _require_sshd()
    fleets: list[SshdFleet] = []
    offset = 0

    def start(count: int) -> SshdFleet:
        nonlocal offset
        fleet = SshdFleet(tmp_path / f"fleet{len(fleets)}", count, first_index=offset)
        offset += count
        fleets.append(fleet)
        return fleet

    try:
        yield start
    finally:
        for fleet in fleets:
            fleet.close()


@pytest.fixture
def local_node(isolated_home: Path) -> Node:
    """This machine as a `local` node; its HOME is a temporary directory."""
    return Node(name="local", host="localhost", transport="local", python=sys.executable, source="conftest")


@pytest.fixture(scope="session")
def built_artifact(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Factory: `built_artifact(workload)` -> the artifact dir (fp16 + fp32 packages, 2 eval
    inputs per bucket), converted once per session and shared (MiniLM's build takes ~35 s).
    Read-only: a test that alters an artifact works on a copy."""
    from node_agent.artifacts import build_artifact

    root = tmp_path_factory.mktemp("shared-artifacts")
    built: dict[str, Path] = {}

    def get(workload: str) -> Path:
        if workload not in built:
            built[workload] = build_artifact(workload, root, eval_count=2)
        return built[workload]

    return get
