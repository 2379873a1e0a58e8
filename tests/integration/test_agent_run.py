"""`python -m node_agent run` for real: numpy and MLX cpu cells, bad jobs, signals, stdin EOF, the lock.

Each test starts the agent as a subprocess with HOME in a temp dir (its lock, first-load markers
and Core ML cache live there) and keeps its stdin open, as the controller does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node_agent.energy.meter import CADENCE_ENV

ROOT = Path(__file__).resolve().parents[2]
FAST = {
    "runs": 2,
    "warmup_min": 5,
    "warmup_max": 40,
    "min_samples": 30,
    "min_duration_s": 0.2,
    "max_duration_s": 1.0,
    "max_samples": 5000,
    "epsilon": 0.05,
    "check_every": 25,
    "sustained_s": 0.5,
    "wait_nominal_s": 0,
}


@pytest.fixture(scope="module")
def artifacts(built_artifact: Callable[[str], Path]) -> dict[str, Path]:
    """mlp (and minilm-l6 when its weights package is installed), shared with the session."""
    from node_agent.workloads import workload_names

    wanted = ["mlp"] + (["minilm-l6"] if "minilm-l6" in workload_names() else [])
    return {name: built_artifact(name) for name in wanted}


def agent_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(ROOT), HOME=str(home), **extra)
    return env


class Agent:
    """A running `python -m node_agent run` with its job written and stdin kept open."""

    def __init__(self, job: dict[str, Any] | str, home: Path, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "node_agent", "run"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=agent_env(home, **env),
        )
        assert self.proc.stdin is not None
        line = job if isinstance(job, str) else json.dumps(job)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        self.events: list[dict[str, Any]] = []

    def read_until(self, predicate: Any, timeout: float = 120) -> dict[str, Any] | None:
        """Read events until one satisfies `predicate` (returned) or stdout ends (None)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            event: dict[str, Any] = json.loads(line)
            self.events.append(event)
            if predicate(event):
                return event
            assert time.monotonic() < deadline, f"no matching event within {timeout}s"
        return None

    def finish(self, timeout: float = 180) -> int:
        self.read_until(lambda e: e["type"] == "done", timeout)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def pids(self) -> set[int]:
        pids = {e["pid"] for e in self.of_type("hello")}
        pids |= {e["worker_pid"] for e in self.of_type("progress") if "worker_pid" in e}
        return pids

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.kill()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def wait_gone(pids: set[int], timeout: float = 10) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return left
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


def cell(cell_id: str, workload: str, bucket: str, engine: str, **config: str) -> dict[str, Any]:
    return {"cell_id": cell_id, "workload": workload, "bucket": bucket, "engine": engine, "config": config}


def job_for(artifacts: dict[str, Path], cells: list[dict[str, Any]], **measure: Any) -> dict[str, Any]:
    return {
        "job_id": f"test-{time.monotonic_ns()}",
        "artifacts": {name: str(path) for name, path in artifacts.items()},
        "cells": cells,
        "measure": {**FAST, **measure},
    }


def test_run_measures_numpy_and_mlx_cells(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent]
) -> None:
    cells = [
        cell("mlp-np", "mlp", "b1", "numpy", dtype="fp64"),
        cell("mlp-mlx", "mlp", "b1", "mlx", device="cpu", dtype="fp32"),
        cell("mlp-coreml", "mlp", "b1", "coreml", compute_units="cpu_and_ne", precision="fp16"),
    ]
    if "minilm-l6" in artifacts:
        cells += [
            cell("minilm-np", "minilm-l6", "s32", "numpy", dtype="fp32"),
            cell("minilm-mlx", "minilm-l6", "s32", "mlx", device="cpu", dtype="fp32"),
        ]
    agent = Agent(job_for(artifacts, cells), tmp_path)
    agents.append(agent)
    assert agent.finish() == 0
    done = agent.of_type("done")[-1]
    assert done["ok"] is True
    results = {e["cell_id"]: e for e in agent.of_type("cell_result")}
    assert set(results) == {c["cell_id"] for c in cells}

    if sys.platform != "darwin":
        coreml = results["mlp-coreml"]
        assert coreml["status"] == "unsupported"
        assert coreml["reason"] == f"Core ML prediction needs macOS (this node runs {sys.platform})"

    hello_pid = agent.of_type("hello")[0]["pid"]
    for cell_id, result in results.items():
        if cell_id == "mlp-coreml":
            continue
        assert result["status"] == "ok", result
        s = result["summary"]
        measured = [
            x
            for e in agent.of_type("samples")
            if e["cell_id"] == cell_id and e["phase"] == "measure"
            for x in e["ns"]
        ]
        assert len(measured) == s["n"]  # the raw samples on the wire are the summary's samples
        assert s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["max"]
        # From n = 6 on an exact p50 CI always exists. Below that (a slow cell on a loaded box) a
        # multi-run cell may still publish its run-level interval, which is across runs, not samples.
        if s["n"] >= 6:
            assert s["ci95"]["p50"] is not None, (cell_id, s["n"])
        for q in ("p50", "p90", "p95"):
            if s["ci95"][q] is not None:  # published once n allows an exact interval
                lo, hi = s["ci95"][q]
                assert lo <= s[q] <= hi
        assert s["runs"] == [0, 1] and len(s["per_run"]) == 2
        pids = {r["pid"] for r in s["per_run"]}
        assert len(pids) == 2 and hello_pid not in pids  # each run in a fresh process
        assert s["cold_start"]["load_ms"] > 0 and s["cold_start"]["first_ms"] > 0
        assert s["cold_start"]["first_load_on_host"] is True
        assert s["numeric"]["ok"], s["numeric"]
        assert s["mode"] in ("latency", "micro")
        if s["mode"] == "micro":
            assert s["p99"] is None
        assert s["warmup"]["n"] >= 2 * FAST["warmup_min"]
        assert s["drift"] is not None  # the last run kept sampling (sustained mode)
        assert s["per_run"][-1]["sustained_n"] > 0
        if s["drift"]["burst"] is None:  # a slow model: too few samples for the windows
            assert "windows need" in s["drift"]["reason"]
        else:
            assert s["sustained"] == s["drift"]["sustained"] and s["burst"]["n"] >= 5
        assert s["clock"]["name"] == "perf_counter_ns"
        assert isinstance(s["bucket_order_seed"], int)
        assert s["conditions"]["before"] is not None and s["conditions"]["after"] is not None
    # runs are interleaved: run 1 visits the cells in a rotated order
    order = results["mlp-np"]["summary"]["bucket_order"]
    assert len(order) == 2 and order[0] != order[1] and sorted(order[0]) == sorted(order[1])
    assert agent.of_type("thermal"), "sustained mode reads conditions"
    assert not wait_gone(agent.pids())
    assert not (tmp_path / ".fleet-agent" / "lock").exists()


BAD_JOBS = [
    ("this is not json", "bad_job", "not JSON"),
    ('{"job_id": "x", "artifacts": {}, "cells": []}', "bad_job", "cells"),
]


@pytest.mark.parametrize(("line", "code", "words"), BAD_JOBS)
def test_garbage_job_lines_are_rejected(
    line: str, code: str, words: str, tmp_path: Path, agents: list[Agent]
) -> None:
    agent = Agent(line, tmp_path)
    agents.append(agent)
    assert agent.finish(timeout=30) == 2
    error = agent.of_type("error")[0]
    assert error["code"] == code and words in error["message"]


@pytest.mark.parametrize(
    ("mutate", "code", "words"),
    [
        (lambda c: c.update(workload="resnet"), "unknown_workload", "cells[0].workload"),
        (lambda c: c.update(engine="tflite"), "unknown_engine", "cells[0].engine"),
        (lambda c: c.update(bucket="b4096"), "bad_job", "cells[0].bucket"),
        (lambda c: c.pop("cell_id"), "bad_job", "cells[0].cell_id"),
        (lambda c: c["config"].update(dtype="fp8"), "bad_job", "cells[0].config.dtype"),
    ],
)
def test_bad_cells_name_the_field(
    mutate: Any, code: str, words: str, artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent]
) -> None:
    bad = cell("c", "mlp", "b1", "numpy", dtype="fp64")
    mutate(bad)
    agent = Agent(job_for(artifacts, [bad]), tmp_path)
    agents.append(agent)
    assert agent.finish(timeout=30) == 2
    error = agent.of_type("error")[0]
    assert error["code"] == code and words in error["message"], error


def test_tampered_artifact_is_refused(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent]
) -> None:
    copy = tmp_path / "artifact"
    shutil.copytree(artifacts["mlp"], copy)
    weights = copy / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    job = job_for({"mlp": copy}, [cell("c", "mlp", "b1", "numpy")])
    agent = Agent(job, tmp_path)
    agents.append(agent)
    assert agent.finish(timeout=60) == 2
    error = agent.of_type("error")[0]
    assert error["code"] == "bad_artifact"
    assert "weights.npz" in error["message"] and "sha256" in error["message"]
    assert not agent.of_type("cell_started")


def test_bucket_too_large_for_memory_is_refused_before_loading(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent]
) -> None:
    job = job_for(artifacts, [cell("big", "mlp", "b32", "numpy")])
    agent = Agent(job, tmp_path, FLEET_AGENT_MEMORY_LIMIT_BYTES=str(32 * 2**20))
    agents.append(agent)
    assert agent.finish(timeout=60) == 2
    error = agent.of_type("error")[0]
    assert error["code"] == "too_large"
    assert "big (mlp/b32, numpy)" in error["message"] and "32.0 MiB available" in error["message"]
    assert not agent.of_type("cell_started")


def long_job(artifacts: dict[str, Path]) -> dict[str, Any]:
    return job_for(
        artifacts,
        [cell("slow", "mlp", "b8", "mlx", device="cpu", dtype="fp32")],
        runs=1,
        epsilon=1e-9,
        min_duration_s=60.0,
        max_duration_s=60.0,
        max_samples=10_000_000,
        sustained_s=0,
    )


def test_sigterm_mid_run_leaves_no_process(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent]
) -> None:
    agent = Agent(long_job(artifacts), tmp_path)
    agents.append(agent)
    assert agent.read_until(lambda e: e["type"] == "samples" and e["phase"] == "measure", timeout=60)
    pids = agent.pids()
    assert len(pids) == 2  # the agent and its worker
    agent.proc.send_signal(signal.SIGTERM)
    rest = agent.read_until(lambda e: e["type"] == "done", timeout=20)
    assert rest is not None and rest["exit_code"] == 128 + signal.SIGTERM
    assert agent.proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert any(e["code"] == "stopped" for e in agent.of_type("error"))
    assert not wait_gone(pids)
    assert not (tmp_path / ".fleet-agent" / "lock").exists()


def test_closed_stdin_stops_the_agent_and_its_worker(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent]
) -> None:
    agent = Agent(long_job(artifacts), tmp_path)
    agents.append(agent)
    assert agent.read_until(lambda e: e["type"] == "samples" and e["phase"] == "measure", timeout=60)
    pids = agent.pids()
    assert agent.proc.stdin is not None
    agent.proc.stdin.close()  # the controller went away
    agent.read_until(lambda e: e["type"] == "done", timeout=20)
    assert agent.proc.wait(timeout=20) != 0
    assert not wait_gone(pids)
    assert not (tmp_path / ".fleet-agent" / "lock").exists()


def test_second_concurrent_run_is_busy(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent]
) -> None:
    first = Agent(long_job(artifacts), tmp_path)
    agents.append(first)
    assert first.read_until(lambda e: e["type"] == "cell_started", timeout=60)
    second = Agent(job_for(artifacts, [cell("c", "mlp", "b1", "numpy")]), tmp_path)
    agents.append(second)
    assert second.finish(timeout=30) == 4
    busy = second.of_type("busy")[0]
    holder_pid = first.of_type("hello")[0]["pid"]
    assert busy["holder"]["pid"] == holder_pid
    assert busy["holder"]["job_id"] and busy["holder"]["host"]
    first.proc.send_signal(signal.SIGTERM)
    first.read_until(lambda e: e["type"] == "done", timeout=20)
    assert not wait_gone(first.pids())


def test_stale_lock_is_taken_over(artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent]) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".fleet-agent" / "lock"
    lock.parent.mkdir(parents=True)
    import socket

    lock.write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x", "job_id": "old"})
    )
    job = job_for(artifacts, [cell("c", "mlp", "b1", "numpy")], runs=1, sustained_s=0, min_duration_s=0.05)
    agent = Agent(job, tmp_path)
    agents.append(agent)
    assert agent.finish() == 0
    warning = next(e for e in agent.of_type("warning") if e["code"] == "stale_lock")
    assert f'"pid": {dead.pid}' in warning["message"]
    assert agent.of_type("cell_result")[0]["status"] == "ok"
    assert not lock.exists()


# --- energy: `energy = "macmon"` with FakeMacmon (tests/fixtures/energy) on PATH ------------------
# The fake replays recorded macmon lines at the requested interval and adds watts that follow the
# agent's own CPU use (FAKE_MACMON_LOAD_WATTS), so a cell's work costs energy above its idle
# baseline; the agent's publish-cadence override (the fake publishes every interval) keeps the
# windows short enough for a test.

FAKE_MACMON = Path(__file__).resolve().parents[1] / "fixtures" / "energy" / "fake_macmon"


def fake_macmon_pids() -> set[int]:
    """Every live FakeMacmon on this machine, found by its command line in /proc."""
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"fake_macmon") for arg in argv):
            pids.add(int(entry.name))
    return pids


@pytest.fixture
def macmon_env(tmp_path: Path) -> dict[str, str]:
    """PATH with a `macmon` that runs the fake; the env an agent needs to use it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "macmon"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_MACMON}" "$@"\n')
    wrapper.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        CADENCE_ENV: "100",
        "FAKE_MACMON_LOAD_WATTS": "8",
    }


ENERGY = {"energy": "macmon", "energy_interval_ms": 100}


def test_a_cell_carries_joules_per_inference_and_watts(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent], macmon_env: dict[str, str]
) -> None:
    before = fake_macmon_pids()
    job = job_for(
        artifacts,
        [cell("mlp-np", "mlp", "b8", "numpy", dtype="fp32")],
        **ENERGY,
        runs=2,
        min_duration_s=1.5,
        max_duration_s=2.0,
        epsilon=1e-6,  # run to the duration ceiling: windows of known length
        sustained_s=1.5,
    )
    agent = Agent(job, tmp_path / "home", **macmon_env)
    agents.append(agent)
    assert agent.finish() == 0
    [result] = agent.of_type("cell_result")
    assert result["status"] == "ok", result
    summary = result["summary"]
    energy = summary["energy"]
    assert energy["status"] == "ok", energy
    assert energy["reader"]["name"] == "macmon" and energy["reader"]["version"] == "0.6.1"
    assert energy["reader"]["interval_ms"] == 100
    assert energy["reader"]["notes"]["schema"] == "<=0.6"
    assert energy["window"] == "measure" and energy["n_runs"] == 2
    soc = energy["j_per_inference"]["soc"]
    assert len(soc["values"]) == 2
    assert soc["lo"] is not None and soc["lo"] <= soc["estimate"] <= soc["hi"], (
        energy["idle_watts"],
        soc,
        energy["flags"],
    )
    assert energy["avg_watts"]["soc"] > energy["idle_watts"]["soc"] > 0  # the work cost energy
    assert energy["avg_watts"]["system"] > 0
    assert summary["power_reader"] == "macmon"
    assert "thermal_state" in energy and "power_source" in energy
    assert not wait_gone(fake_macmon_pids() - before)


def test_windows_too_short_publish_nothing(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent], macmon_env: dict[str, str]
) -> None:
    before = fake_macmon_pids()
    job = job_for(
        artifacts,
        [cell("mlp-np", "mlp", "b1", "numpy", dtype="fp32")],
        **ENERGY,
        runs=1,
        min_duration_s=0.2,
        max_duration_s=0.3,
        sustained_s=0,
    )
    env = {**macmon_env, CADENCE_ENV: "1000"}  # 10 cadences: a 10 s window at least
    agent = Agent(job, tmp_path / "home", **env)
    agents.append(agent)
    assert agent.finish() == 0
    [result] = agent.of_type("cell_result")
    summary = result["summary"]
    assert summary["energy"]["status"] == "energy_too_short"
    assert "j_per_inference" not in summary["energy"]
    assert "energy_too_short" in summary["flags"]
    assert summary["p50"] > 0  # latency is published regardless
    assert not wait_gone(fake_macmon_pids() - before)


def test_sigterm_while_the_reader_runs_leaves_no_reader(
    artifacts: dict[str, Path], tmp_path: Path, agents: list[Agent], macmon_env: dict[str, str]
) -> None:
    before = fake_macmon_pids()
    job = job_for(
        artifacts,
        [cell("slow", "mlp", "b8", "numpy", dtype="fp32")],
        **ENERGY,
        runs=1,
        min_duration_s=60.0,
        max_duration_s=60.0,
        epsilon=1e-9,
        sustained_s=0,
    )
    agent = Agent(job, tmp_path / "home", **macmon_env)
    agents.append(agent)
    assert agent.read_until(lambda e: e["type"] == "samples" and e["phase"] == "measure", timeout=60)
    readers = fake_macmon_pids() - before
    assert readers, "the reader runs beside the worker"
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert not wait_gone(readers | agent.pids())
