"""Helpers shared by the sweep integration tests: a spec writer, the `fleet-tui` subprocess
wrapper that collects --json events, and a process-table check for leftover agents."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spec_fixtures import spec_toml
from sshd import SshdFleet

from fleet_tui.config.inventory import Node, save_inventory

RUNNING: list[subprocess.Popen[str]] = []
"""Sweeps started by tests; the integration conftest kills any still running after each test."""

FAST_MEASURE = """
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
    sections = {
        "measure": FAST_MEASURE.format(
            numeric="true" if numeric else "false",
            min_duration_s=min_duration_s,
            max_duration_s=max_duration_s,
        ),
        "scheduler": scheduler,
    }
    if nodes is not None:
        sections["targets"] = "nodes = [" + ", ".join(f'"{n}"' for n in nodes) + "]"
    return spec_toml(name, workloads=workloads, engines=engines, sections=sections)


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
        RUNNING.append(self.proc)
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

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 240) -> dict[str, Any]:
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

    def finish(self, timeout: float = 540) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._err_reader.join(timeout=5)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines) + "\n--- stderr ---\n" + "".join(self._stderr)

    @property
    def final(self) -> dict[str, Any]:
        return next(e for e in reversed(self.events) if e.get("type") == "sweep_finished")


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
