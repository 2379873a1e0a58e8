"""A fleet with one misbehaving node per failure, beside a healthy one, on the local transport and
over real sshd: the healthy node finishes, each hostile node's cells end `lost` with its own
reason, the run is `incomplete` (exit 3), nothing a node sent reaches the output raw, and once
the nodes are healed `--resume` completes the run.

The hostile nodes are fakes (tests/fake_agent.py): deep JSON, huge integers, a wrong type, a line
past the line limit, an agent that stops itself (SIGSTOP), a flood of valid samples past
max_samples, and a node whose `python -c` checks print 400 MB. The controller's peak RSS over
the whole sweep is measured (its RSS, sampled every 10 ms while it runs) and bounded.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from fake_agent import fake_python, heal
from sshd import SshdFleet
from sweep_harness import local_node, spec_text, write_setup

from fleet_tui.config.inventory import Node
from fleet_tui.fleet.session import COMMAND_MAX_EVENTS
from fleet_tui.store import Store
from fleet_tui.sweep.scheduler import LIVENESS_FLOOR_ENV

pytestmark = [pytest.mark.slow]

Factory = Callable[[int], SshdFleet]

HOSTILE = {
    # mode: what the lost cells' reason must say
    "deep_json": "JSON nested too deeply",
    "huge_ints": "thermal.t_ns must be in 0..",
    "wrong_types": "unknown event type ['samples']",
    "long_line": "line limit",
    "hung": "hung: agent `run` sent nothing for",
    "flood": "more than max_samples (3000) allows",
    "check_flood": "more than 1048576 bytes on stdout",
}
MAX_RSS_MB = 300
"""The controller's peak RSS over a sweep of 8 nodes, one printing 400 MB: 69 MB local, 99 MB
over sshd here."""
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A 50 ms budget keeps the hung-agent bound short: floor + max_duration_s + 10 x 50 ms.
SPEC = spec_text(workloads=(("mlp", (("b1", 50.0),)),))


def _rss_mb(pid: int) -> int | None:
    """VmRSS of a live process in MB once it runs the CLI, None before its exec or once gone.

    Sampled (every 10 ms) rather than read as a peak: wait4's ru_maxrss and even VmHWM were seen
    to carry this (large) pytest process's 688 MB into the child in the full suite; the current
    RSS of the exec'd CLI cannot."""
    try:
        if b"fleet_tui" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), None)
    return int(line.split()[1]) // 1024 if line else None


def _sweep(args: list[str], env: dict[str, str]) -> tuple[int, str, int]:
    """Run the CLI; (exit code, stdout + stderr, the controller's peak RSS in MB, sampled every
    10 ms until it exits)."""
    with subprocess.Popen(
        [sys.executable, "-m", "fleet_tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    ) as proc:
        stdout = proc.stdout
        assert stdout is not None
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.append(stdout.read()), daemon=True)
        reader.start()
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _rss_mb(proc.pid) or 0)
            time.sleep(0.01)
        reader.join(timeout=30)
    return proc.returncode, "".join(chunks), peak


def _hostile_nodes(tmp_path: Path, base: Callable[[str, Path], Node], own_home: bool) -> list[Node]:
    nodes = []
    for mode in HOSTILE:
        home = tmp_path / f"home-{mode}" if own_home else None
        if home is not None:
            home.mkdir()
        nodes.append(base(mode, fake_python(tmp_path / f"fake-{mode}", mode, home=home)))
    return nodes


def _check_hostile_sweep(db: Path, code: int, output: str, rss_mb: int, nodes: list[Node]) -> int:
    assert code == 3, output
    assert "Traceback" not in output, output
    assert not CONTROL.search(output), CONTROL.findall(output)
    assert rss_mb < MAX_RSS_MB, f"controller peak RSS {rss_mb} MB"
    with Store.open(db) as store:
        (summary,) = store.list_runs()
        run_id = int(summary.id)
        assert store.run(run_id).status == "incomplete"
        by_node = {n.name: store.cells_for(run_id, node=n.name) for n in nodes}
    healthy, *hostile = nodes
    assert [c.state for c in by_node[healthy.name]] == ["done"], output
    for node, (mode, reason) in zip(hostile, HOSTILE.items(), strict=True):
        cells = by_node[node.name]
        assert [c.state for c in cells] == ["lost"], (mode, cells)
        assert reason in (cells[0].reason or ""), (mode, cells[0].reason)
    with sqlite3.connect(db) as conn:
        stored = dict(
            conn.execute(
                "SELECT c.node, COALESCE(SUM(s.count), 0) FROM cells c LEFT JOIN samples s "
                "ON s.cell_id = c.id GROUP BY c.node"
            ).fetchall()
        )
    # Only the flood stored anything: its batches up to max_samples (3000) in each attempt it got
    # to (two, or one when the retry failed sooner on a loaded box), never a sample past them.
    flood = hostile[list(HOSTILE).index("flood")].name
    assert {name for name, n in stored.items() if n and name != healthy.name} == {flood}
    assert stored[flood] in (3000, 2 * 3000), stored
    return run_id


def _resume(db: Path, inventory: Path, run_id: int, env: dict[str, str], extra: list[str]) -> None:
    code, output, _ = _sweep(
        ["sweep", "--resume", str(run_id), "--inventory", str(inventory), "--db", str(db), *extra], env
    )
    assert code == 0, output
    with Store.open(db) as store:
        assert store.run(run_id).status == "complete"
        assert {c.state for c in store.cells_for(run_id)} == {"done"}


@pytest.fixture
def hostile_env(sweep_env: dict[str, str]) -> dict[str, str]:
    return {**sweep_env, LIVENESS_FLOOR_ENV: "5"}


def test_a_hostile_local_fleet_cannot_break_the_controller(
    hostile_env: dict[str, str], tmp_path: Path
) -> None:
    def local(mode: str, python: Path) -> Node:
        return Node(
            name=f"bad-{mode}", host="localhost", transport="local", python=str(python), source="test"
        )

    nodes = [local_node(), *_hostile_nodes(tmp_path, local, own_home=True)]
    inventory, spec_path, db = write_setup(tmp_path, nodes, SPEC)
    code, output, rss_mb = _sweep(
        ["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db)], hostile_env
    )
    run_id = _check_hostile_sweep(db, code, output, rss_mb, nodes)
    for node in nodes[1:]:
        heal(Path(node.python))
    _resume(db, inventory, run_id, hostile_env, [])


@pytest.mark.sshd
def test_a_hostile_ssh_fleet_cannot_break_the_controller(
    sshd_fleet: Factory, hostile_env: dict[str, str], tmp_path: Path
) -> None:
    fleet = sshd_fleet(1 + len(HOSTILE))
    healthy, *others = fleet.nodes

    def over_ssh(mode: str, python: Path) -> Node:
        return replace(others[list(HOSTILE).index(mode)], python=str(python))

    nodes = [healthy, *_hostile_nodes(tmp_path, over_ssh, own_home=False)]
    inventory, spec_path, db = write_setup(tmp_path, nodes, SPEC)
    known_hosts = ["--known-hosts", str(fleet.known_hosts)]
    code, output, rss_mb = _sweep(
        ["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db), *known_hosts], hostile_env
    )
    run_id = _check_hostile_sweep(db, code, output, rss_mb, nodes)
    for node in nodes[1:]:
        heal(Path(node.python))
    _resume(db, inventory, run_id, hostile_env, known_hosts)


PROBE_MAX_RSS_MB = 150
"""`probe` of one node whose checks print 400 MB: 27 MB here (825 MB before the output cap)."""


def test_a_node_printing_400_mb_on_a_check_leaves_the_controller_small(
    sweep_env: dict[str, str], tmp_path: Path
) -> None:
    flood = Node(
        name="flood",
        host="localhost",
        transport="local",
        python=str(fake_python(tmp_path / "fake", "check_flood")),
        source="test",
    )
    inventory, _, _ = write_setup(tmp_path, [flood], SPEC)
    code, output, rss_mb = _sweep(["probe", "--inventory", str(inventory)], sweep_env)
    assert code == 3, output
    assert "flood" in output and "printed more than 1048576 bytes on stdout" in output, output
    assert "zzzz" not in output  # the flood itself is never echoed
    assert rss_mb < PROBE_MAX_RSS_MB, f"controller peak RSS {rss_mb} MB"


def test_a_probe_or_selftest_that_never_stops_talking_is_cut_off(
    sweep_env: dict[str, str], tmp_path: Path
) -> None:
    chatty = Node(
        name="chatty",
        host="localhost",
        transport="local",
        python=str(fake_python(tmp_path / "fake", "probe_flood")),
        source="test",
    )
    inventory, _, _ = write_setup(tmp_path, [chatty], SPEC)
    for command in ("probe", "selftest"):
        code, output, _ = _sweep([command, "--inventory", str(inventory)], sweep_env)
        assert code == 3, output
        assert f"sent more than {COMMAND_MAX_EVENTS} events" in output, output
