"""Sweep faults for real: an sshd killed mid-sweep, SIGINT to the CLI, two sweeps on one node.

Helpers (the `Sweep` subprocess wrapper, spec writer, process-table check) live in
tests/sweep_harness.py.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sshd import SshdFleet
from sweep_harness import Sweep, local_node, spec_text, sweep_args, wait_no_agents, write_setup

from fleet_tui.config.inventory import Node
from fleet_tui.store import Store
from node_agent.protocol import SCHEMA

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

Factory = Callable[[int], SshdFleet]

TWO_BUCKETS = (("mlp", (("b1", 1000.0), ("b8", 1000.0))),)
NUMPY_AND_MLX = 'numpy = [{ dtype = "fp64" }]\nmlx = [{ device = "cpu", dtype = "fp32" }]'


def _is_cell_started_on(node: str, event: dict[str, Any]) -> bool:
    return event.get("node") == node and event.get("type") == "cell_started"


def sample_rows(db: Path) -> list[tuple[int, int, int, int]]:
    """(cell id, attempt, batch_seq, count) of every stored sample batch."""
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT cell_id, attempt, batch_seq, count FROM samples"))


def test_lost_node_marks_cells_lost_and_resume_runs_only_those(
    sshd_fleet: Factory, sweep_env: dict[str, str], tmp_path: Path
) -> None:
    fleet = sshd_fleet(2)
    spec = spec_text(workloads=TWO_BUCKETS, engines=NUMPY_AND_MLX)
    inventory, spec_path, db = write_setup(tmp_path, fleet.nodes, spec)

    sweep = Sweep(sweep_args(spec_path, inventory, db, fleet), sweep_env)
    # Kill ssh1 once it has sent samples (a cell started and progressed into measuring).
    sweep.wait_for(lambda e: e.get("node") == "ssh1" and e.get("type") == "cell_started")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            received = conn.execute(
                "SELECT COUNT(*) FROM samples s JOIN cells c ON c.id = s.cell_id WHERE c.node = 'ssh1'"
            ).fetchone()[0]
        if received:
            break
        time.sleep(0.05)
    fleet.kill(1)
    code = sweep.finish()
    assert code == 3, sweep.output
    assert "incomplete" in sweep.final["status"]
    run_id = sweep.final["run_id"]
    # The dropped agent saw its stdin close and stopped: nothing left running on the dead node.
    assert wait_no_agents(str(fleet.home(1))) == []

    with Store.open(db) as store:
        cells = store.cells_for(run_id)
        survivors = {c.id: c for c in cells if c.node == "ssh0"}
        victims = {c.id: c for c in cells if c.node == "ssh1"}
        assert all(c.state == "done" for c in survivors.values()), survivors
        assert all(c.state == "lost" for c in victims.values()), victims
        assert all("unreachable" in (c.reason or "") for c in victims.values()), victims
        survivor_results = {cid: store.result(cid) for cid in survivors}
    rows_before = sample_rows(db)
    assert any(cid in victims for cid, *_ in rows_before)  # what ssh1 sent before dying is kept

    fleet.restart(1)
    resumed = Sweep(sweep_args(None, inventory, db, fleet, "--resume", str(run_id)), sweep_env)
    assert resumed.finish() == 0, resumed.output
    assert resumed.final["run_id"] == run_id and resumed.final["status"] == "complete"
    # The resume log names the attempt the store records (the lost cells' second), not "attempt 1".
    jobs = [e for e in resumed.events if e.get("type") == "job_started"]
    assert jobs and all("attempt 1" not in e["message"] for e in jobs if e.get("node") == "ssh1"), jobs

    with Store.open(db) as store:
        after = {c.id: c for c in store.cells_for(run_id)}
        # Done cells untouched: same attempt, same timestamps, same results.
        for cid, cell in survivors.items():
            assert after[cid] == cell
            assert store.result(cid) == survivor_results[cid]
        for cid in victims:
            assert after[cid].state == "done" and after[cid].attempts >= 2, after[cid]
            summary = store.result(cid)
            assert summary is not None and store.sample_count(cid, "measure") == summary["n"]
            started = datetime.fromisoformat(after[cid].started_at or "")
            assert started > datetime.fromisoformat(victims[cid].started_at or "1970-01-01T00:00:00+00:00")
        assert store.run(run_id).status == "complete"
    rows_after = sample_rows(db)
    assert set(rows_before) <= set(rows_after)  # nothing received earlier was lost
    assert [r for r in rows_after if r[0] in survivors] == [r for r in rows_before if r[0] in survivors]


def test_sigint_stops_leaves_no_agent_and_is_resumable(
    sshd_fleet: Factory, sweep_env: dict[str, str], tmp_path: Path, isolated_home: Path
) -> None:
    fleet = sshd_fleet(1)
    spec = spec_text(workloads=TWO_BUCKETS, engines=NUMPY_AND_MLX)
    inventory, spec_path, db = write_setup(tmp_path, [*fleet.nodes, local_node()], spec)

    sweep = Sweep(sweep_args(spec_path, inventory, db, fleet), sweep_env)
    for node in ("ssh0", "local"):
        sweep.wait_for(partial(_is_cell_started_on, node))
    sweep.proc.send_signal(signal.SIGINT)
    # the limit only bounds a hang; how fast it stops is a figure of tests/bench/bench_timings.py
    code = sweep.finish(timeout=60)
    assert code == 130, sweep.output
    assert sweep.final["status"] == "interrupted" and sweep.final["signal"] == "SIGINT"
    # No agent (or measuring worker) survives on either node, and the node locks are released.
    for home in (fleet.home(0), isolated_home):
        assert wait_no_agents(str(home), timeout=5) == []
        assert not (home / ".fleet-agent" / "lock").exists()
    run_id = sweep.final["run_id"]
    with Store.open(db) as store:
        assert store.run(run_id).status == "interrupted"
        unfinished = store.unfinished_cells(run_id)
        assert unfinished, "an interrupted sweep leaves cells to resume"
        # The cells measuring at the signal are not left "running": back to pending, saying why.
        assert store.cells_for(run_id, states=["running"]) == []
        interrupted = [c for c in unfinished if "interrupted during attempt" in (c.reason or "")]
        assert {c.node for c in interrupted} == {"ssh0", "local"}, unfinished

    resumed = Sweep(sweep_args(None, inventory, db, fleet, "--resume", str(run_id)), sweep_env)
    assert resumed.finish() == 0, resumed.output
    with Store.open(db) as store:
        assert store.run(run_id).status == "complete"
        assert all(c.state == "done" for c in store.cells_for(run_id))


def test_second_sweep_skips_or_waits_and_never_overlaps(
    sshd_fleet: Factory, sweep_env: dict[str, str], tmp_path: Path
) -> None:
    fleet = sshd_fleet(1)
    # The first sweep measures for >= 2 x 10 s: long enough for the other two CLIs to start, probe
    # and find its lock even on a 2-core box under stress-ng (4 s was not: the skipper's job
    # started after the first sweep had ended).
    first_text = spec_text(name="first", min_duration_s=10.0, max_duration_s=11.0)
    inventory, first_spec, db = write_setup(tmp_path, fleet.nodes, first_text)
    skip_spec = tmp_path / "skip.toml"
    skip_spec.write_text(spec_text(name="skipper", scheduler='on_busy = "skip"'))
    wait_spec = tmp_path / "wait.toml"
    wait_spec.write_text(spec_text(name="waiter", scheduler='on_busy = "wait"\nbusy_wait_s = 120'))

    first = Sweep(sweep_args(first_spec, inventory, db, fleet), sweep_env)
    first.wait_for(lambda e: e.get("type") == "cell_started")
    skipper = Sweep(sweep_args(skip_spec, inventory, db, fleet), sweep_env)
    waiter = Sweep(sweep_args(wait_spec, inventory, db, fleet), sweep_env)
    waiter.wait_for(lambda e: e.get("type") == "busy")

    assert skipper.finish() == 3, skipper.output
    assert first.finish() == 0, first.output
    assert waiter.finish() == 0, waiter.output

    with Store.open(db) as store:
        runs = {r.name: r for r in store.list_runs()}
        (skipped,) = store.cells_for(runs["skipper"].id)
        assert skipped.state == "lost" and (skipped.reason or "").startswith("busy: held by pid")
        first_cells = store.cells_for(runs["first"].id)
        waiter_cells = store.cells_for(runs["waiter"].id)
    assert all(c.state == "done" for c in [*first_cells, *waiter_cells])
    # Measurements never overlapped: the waiter's cells ran after the first sweep's ended.
    first_end = max(datetime.fromisoformat(c.finished_at or "") for c in first_cells)
    waiter_start = min(datetime.fromisoformat(c.started_at or "") for c in waiter_cells)
    assert waiter_start >= first_end


def test_a_lying_agent_is_its_nodes_error_only(
    sshd_fleet: Factory, sweep_env: dict[str, str], tmp_path: Path
) -> None:
    fleet = sshd_fleet(1)
    # The liar's python is the real one for probe and deploy, but its `run` says hello as the
    # deployed agent, answers the job with a well-formed result for a cell it was never given,
    # then hangs until it is stopped.
    lie = json.dumps({"schema": SCHEMA, "type": "cell_result", "cell_id": "999999", "status": "ok"})
    # In the shell's single quotes, '"$sha"' splices in the deployed agent's sha prefix.
    hello = '{"schema": ' + str(SCHEMA) + ', "type": "hello", "agent_sha": "\'"$sha"\'"}'
    fake_python, pids = tmp_path / "lying-python", tmp_path / "liar-pids"
    fake_python.write_text(
        "#!/bin/sh\n"
        f'if [ "$3" = run ]; then\n  echo $$ >> {pids}; read -r job\n'
        '  sha=$(basename "$2" .pyz | cut -d- -f2)\n'
        f"  echo '{hello}'; echo '{lie}'; exec sleep 60\nfi\n"
        f'exec {sys.executable} "$@"\n'
    )
    fake_python.chmod(0o755)
    liar = Node(name="liar", host="localhost", transport="local", python=str(fake_python), source="test")
    inventory, spec_path, db = write_setup(tmp_path, [*fleet.nodes, liar], spec_text())

    sweep = Sweep(sweep_args(spec_path, inventory, db, fleet), sweep_env)
    assert sweep.finish() == 3, sweep.output
    assert sweep.final["status"] == "incomplete"
    with Store.open(db) as store:
        cells = {c.node: c for c in store.cells_for(sweep.final["run_id"])}
    assert cells["ssh0"].state == "done", cells  # the honest node is untouched
    lost = cells["liar"]
    assert lost.state == "lost" and lost.attempts == 2, lost  # retried once, then given up
    assert "protocol_error" in (lost.reason or "") and "not in this job" in (lost.reason or ""), lost
    assert [e["node"] for e in sweep.events if e.get("type") == "retry"] == ["liar"]
    # Both hanging liars were stopped, not left behind.
    liar_pids = pids.read_text().split()
    assert len(liar_pids) == 2
    assert all(_gone(int(pid)) for pid in liar_pids), liar_pids


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """True once `pid` has exited (or is a zombie waiting for its parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def test_unknown_host_key_is_not_retried_and_resume_completes_once_trusted(
    sshd_fleet: Factory, sweep_env: dict[str, str], tmp_path: Path
) -> None:
    """Waiting cannot cure an untrusted host key: the node's cells are lost at the first attempt
    (no retry), the other node finishes, and after the operator trusts the key `--resume` runs
    only that node's cells."""
    fleet = sshd_fleet(2)
    known_hosts = fleet.empty_known_hosts()
    known_hosts.write_text(fleet.known_hosts.read_text().splitlines()[0] + "\n")  # trust ssh0 only
    spec = spec_text(scheduler='on_busy = "skip"\nmax_attempts = 3\nretry_backoff_s = 0.2')
    inventory, spec_path, db = write_setup(tmp_path, fleet.nodes, spec)
    args = [*sweep_args(spec_path, inventory, db, None), "--known-hosts", str(known_hosts)]

    sweep = Sweep(args, sweep_env)
    assert sweep.finish() == 3, sweep.output
    assert not [e for e in sweep.events if e.get("type") == "retry"], sweep.output
    run_id = sweep.final["run_id"]
    with Store.open(db) as store:
        by_node = {c.node: c for c in store.cells_for(run_id)}
    assert by_node["ssh0"].state == "done"
    assert by_node["ssh1"].state == "lost" and "host_key_unknown" in (by_node["ssh1"].reason or "")

    known_hosts.write_text(fleet.known_hosts.read_text())  # the operator trusts ssh1's key
    resumed = Sweep(
        [*sweep_args(None, inventory, db, None, "--resume", str(run_id)), "--known-hosts", str(known_hosts)],
        sweep_env,
    )
    assert resumed.finish() == 0, resumed.output
    with Store.open(db) as store:
        assert {c.node: c.state for c in store.cells_for(run_id)} == {"ssh0": "done", "ssh1": "done"}


def test_a_store_failure_is_the_controllers_error_not_the_nodes(
    sweep_env: dict[str, str], isolated_home: Path, tmp_path: Path
) -> None:
    """A database another process holds locked fails the sweep with a clean message and exit 2:
    the node is neither blamed (no protocol_error) nor retried."""
    spec = spec_text(min_duration_s=1.0, max_duration_s=3.0)
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    sweep = Sweep(
        ["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db), "--json"], sweep_env
    )
    sweep.wait_for(lambda e: e.get("type") == "cell_started")
    # A second writer takes the write lock and keeps it: the sweep's next write waits out its
    # busy timeout and fails.
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        code = sweep.finish()
    finally:
        holder.close()
    assert code == 2, sweep.output
    assert "the store failed during the sweep" in sweep.output and "locked" in sweep.output
    assert "Traceback" not in sweep.output
    assert "protocol_error" not in sweep.output
    assert not [e for e in sweep.events if e.get("type") in ("retry", "node_lost")], sweep.output
    assert wait_no_agents(str(isolated_home)) == []  # the agent was stopped, not left measuring
