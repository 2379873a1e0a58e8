"""Two `sweep --resume` of one run at once: the second refuses (exit 2) naming the first, whose
cells are never marked lost; a lock left by a process that died is taken over. The local node,
real agents, real store, the CLI as a subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_harness import Sweep, local_node, run_cli, spec_text, write_setup

from fleet_tui.config.spec import parse_spec
from fleet_tui.store import Store
from fleet_tui.sweep.plan import build_plan

pytestmark = pytest.mark.slow

HOLD_AND_DIE = """
import os, sys
from fleet_tui.store import Store
store = Store.open(sys.argv[1])
store.lock_run(int(sys.argv[2]))
os.kill(os.getpid(), 9)  # dies holding it: no cleanup
"""


def test_a_second_resume_refuses_and_the_first_keeps_its_cells(
    sweep_env: dict[str, str], tmp_path: Path
) -> None:
    # Two buckets with a 1 s floor each: the first resume is measuring when the second starts.
    spec = spec_text(
        nodes=["local"], workloads=(("mlp", (("b1", 1000.0), ("b8", 1000.0))),), min_duration_s=1.0
    )
    inventory, _, db = write_setup(tmp_path, [local_node()], spec)
    with Store.open(db) as store:
        run_id = store.create_run(parse_spec(spec, source="spec.toml"))
        store.add_cells(run_id, build_plan(parse_spec(spec), [local_node()]).cells)
        store.set_run_status(run_id, "interrupted", exit_code=130)

    # A sweep that died holding the run's lock: the next resume takes it over.
    dead = subprocess.run([sys.executable, "-c", HOLD_AND_DIE, str(db), str(run_id)], timeout=60)
    assert dead.returncode == -signal.SIGKILL

    args = ["sweep", "--resume", str(run_id), "--inventory", str(inventory), "--db", str(db), "--json"]
    first = Sweep(args, sweep_env)
    first.wait_for(lambda e: e.get("type") == "cell_started")

    second = run_cli(args, sweep_env)
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"run {run_id} is in use by another fleet-tui (pid {first.proc.pid} on " in second.stderr
    assert "Traceback" not in second.stderr

    assert first.finish() in (0, 1), first.output
    assert "took over the lock of run" in first.output and "which is no longer running" in first.output
    assert first.final["status"] == "complete"
    with Store.open(db) as store:
        states = [c.state for c in store.cells_for(run_id)]
    assert states == ["done", "done"]  # the refused resume marked nothing lost
