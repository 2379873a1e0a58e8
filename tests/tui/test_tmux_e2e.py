"""The installed `fleet-tui` command in a real terminal (tmux): it opens, shows the local node's
chip, walks to Compare on a stored run, and quits with the terminal restored."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import export_fixture
import pytest

from node_agent.facts import collect_facts

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)"),
]

WAIT_S = 30.0


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Run tmux on a private socket; yields `tmux(*args) -> stdout`, kills the server after."""
    socket = str(tmp_path / "tmux.sock")

    def run(*args: str) -> str:
        done = subprocess.run(["tmux", "-S", socket, *args], capture_output=True, text=True, check=True)
        return done.stdout

    yield run
    subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)


def wait_for(capture: Callable[[], str], wanted: str) -> str:
    deadline = time.monotonic() + WAIT_S
    screen = capture()
    while wanted not in screen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{wanted!r} never appeared; the pane shows:\n{screen}")
        time.sleep(0.2)
        screen = capture()
    return screen


def test_installed_command_opens_shows_chip_walks_to_compare_and_quits(
    tmux: Callable[..., str], tmp_path: Path
) -> None:
    command = Path(sys.executable).parent / "fleet-tui"
    assert command.exists(), f"{command}: the package is not installed in this environment"
    db = tmp_path / "fixture.db"
    export_fixture.build(db, nodes=export_fixture.NODES[:2], runs=2, samples_per_run=140).store.close()
    inventory = tmp_path / "local.toml"
    inventory.write_text('[[node]]\nname = "local"\ntransport = "local"\n')
    home = tmp_path / "home"
    home.mkdir()
    env = f"HOME={home} TERM=xterm-256color"
    tmux(
        "new-session", "-d", "-s", "e2e", "-x", "120", "-y", "32",
        f"env {env} {command} --inventory {inventory} --db {db}; echo EXITED:$?; sleep 30",
    )  # fmt: skip

    def capture() -> str:
        return tmux("capture-pane", "-p", "-t", "e2e")

    chip = str(collect_facts().get("chip") or "")
    assert chip, "this machine reports a chip (Linux CPU model) for the local node"
    wait_for(capture, chip[:20])
    tmux("send-keys", "-t", "e2e", "c")
    wait_for(capture, "SoC side by side")
    tmux("send-keys", "-t", "e2e", "q")
    screen = wait_for(capture, "EXITED:0")
    # The alternate screen is gone: the pane shows the shell's line, not the TUI's footer.
    assert "SoC side by side" not in screen and "^p palette" not in screen
    modes = tmux("display-message", "-p", "-t", "e2e", "#{alternate_on} #{cursor_flag}")
    assert modes.split()[0] == "0", f"the terminal is left in the alternate screen: {modes}"
