"""Energy per inference through a real smoke sweep on the local node, measured by FakeMacmon.

FakeMacmon (tests/fixtures/energy/fake_macmon) is the `macmon` on PATH: it replays recorded
`macmon pipe` lines at the requested interval (100 ms here) and adds watts that follow the CPU use
of the agent that started it, so the work costs energy above the idle baseline. It publishes every
interval, which the agent is told (FLEET_AGENT_ENERGY_CADENCE_MS) so that windows of a couple of
seconds are long enough to publish. What is checked: the stored result carries joules per
inference and watts, `compare --format json` shows them, and no reader process survives the
sweep, neither when it ends nor after SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from sweep_harness import Sweep, local_node, run_cli, spec_text, sweep_args, wait_no_agents, write_setup

from fleet_tui.store import Store
from node_agent.energy.meter import CADENCE_ENV

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the /proc scan is Linux")

FAKE_MACMON = Path(__file__).resolve().parents[1] / "fixtures" / "energy" / "fake_macmon"
ENERGY_MEASURE = 'numeric = false\nenergy = "macmon"\nenergy_interval_ms = 100\nkwh_usd = 0.3\n'


def fake_macmon_pids() -> set[int]:
    """Live FakeMacmon processes (not zombies), found by their command line in /proc."""
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(arg.endswith(b"fake_macmon") for arg in argv):
            pids.add(int(entry.name))
    return pids


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = pids & fake_macmon_pids()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.fixture
def energy_env(sweep_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "macmon"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_MACMON}" "$@"\n')
    wrapper.chmod(0o755)
    return {
        **sweep_env,
        "PATH": f"{bin_dir}{os.pathsep}{sweep_env.get('PATH', '')}",
        CADENCE_ENV: "100",
        "FAKE_MACMON_LOAD_WATTS": "8",
    }


def _spec(sustained_minutes: float = 0.03, min_duration_s: float = 1.5, max_duration_s: float = 2.0) -> str:
    text = spec_text(
        workloads=(("mlp", (("b8", 1000.0),)),), min_duration_s=min_duration_s, max_duration_s=max_duration_s
    )
    text = text.replace("numeric = false\n", ENERGY_MEASURE).replace(
        "sustained_minutes = 0\n", f"sustained_minutes = {sustained_minutes}\n"
    )
    # A sustained phase of seconds on a shared box says nothing about thermal drift: that gate
    # would only make the exit code depend on the box's load.
    return text + "\n[gates]\nsustained_vs_burst = false\n"


def test_a_sweep_stores_and_compares_joules_per_inference(
    energy_env: dict[str, str], tmp_path: Path, isolated_home: Path
) -> None:
    before = fake_macmon_pids()
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], _spec())
    sweep = Sweep(sweep_args(spec_path, inventory, db, None), energy_env)
    assert sweep.finish() == 0, sweep.output
    run_id = sweep.final["run_id"]
    assert wait_gone(fake_macmon_pids() - before) == set(), "a reader outlived the sweep"
    assert wait_no_agents(str(isolated_home), timeout=5) == []

    with Store.open(db) as store:
        [cell] = store.cells_for(run_id)
        summary = store.result(cell.id)
        [row] = store.energy(run_id)
    assert summary is not None and summary["power_reader"] == "macmon"
    energy = summary["energy"]
    assert energy["status"] == "ok", energy
    assert energy["reader"]["name"] == "macmon" and energy["reader"]["interval_ms"] == 100
    soc = energy["j_per_inference"]["soc"]
    assert len(soc["values"]) == 2 and all(v > 0 for v in soc["values"]), energy
    assert energy["avg_watts"]["soc"] > energy["idle_watts"]["soc"] > 0
    assert row["reader"] == "macmon" and row["j_per_inf_soc"] == soc["estimate"]
    assert row["watts_soc"] == energy["avg_watts"]["soc"] and row["watts_system"] is not None

    result = run_cli(
        ["compare", str(run_id), "--db", str(db), "--format", "json", "--metric", "energy"], energy_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = json.loads(result.stdout)
    [shown] = [c for c in table["table"]["cells"] if c["state"] == "done"]
    assert shown["energy"]["reader"] == "macmon"
    assert shown["energy"]["j_per_inference"]["value"] == pytest.approx(soc["estimate"], rel=0.05)
    assert shown["energy"]["j_per_inference"]["unit"] == "J"
    assert shown["energy"]["watts_soc"] == pytest.approx(energy["avg_watts"]["soc"])
    assert shown["energy"]["perf_per_watt"] > 0

    sweep_text = run_cli(["compare", str(run_id), "--db", str(db), "--metric", "energy"], energy_env)
    assert "SoC J/INF" in sweep_text.stdout and "macmon" in sweep_text.stdout


def test_sigint_mid_sweep_leaves_no_reader(
    energy_env: dict[str, str], tmp_path: Path, isolated_home: Path
) -> None:
    before = fake_macmon_pids()
    spec = _spec(sustained_minutes=1.0, min_duration_s=30.0, max_duration_s=30.0)
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    sweep = Sweep(sweep_args(spec_path, inventory, db, None), energy_env)
    sweep.wait_for(lambda e: e.get("type") == "cell_started")
    deadline = time.monotonic() + 60
    while not fake_macmon_pids() - before:
        assert time.monotonic() < deadline, "the reader never started:\n" + sweep.output
        time.sleep(0.1)
    readers = fake_macmon_pids() - before
    sweep.proc.send_signal(signal.SIGINT)
    assert sweep.finish(timeout=60) == 130, sweep.output
    assert wait_gone(readers) == set(), "a reader outlived the interrupted sweep"
    assert wait_gone(fake_macmon_pids() - before) == set()
    assert wait_no_agents(str(isolated_home), timeout=5) == []
