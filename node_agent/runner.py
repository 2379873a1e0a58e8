"""The ``run`` command: one job of cells, each measured in R independent worker processes.

Process model (MEASUREMENT 2.6 (8), pyperf's): the agent process reads the job, validates it,
takes the node lock and then, for each run r in 0..R-1 and each cell in that run's order
(a seeded shuffle rotated by r, so drift does not alias onto one bucket), spawns a FRESH
worker process (``sys.executable -c <boot> <code root>``: the code root is the zipapp when the
agent runs from one, else the source tree) that loads the model, measures one run and exits.
Cold start is that fresh process's load + compile + first call. The agent relays the
worker's events and pools the measured samples of all runs into the cell's summary.

Lifecycle (TECH_BRIEF D): SIGTERM / SIGHUP / SIGINT set a stop flag and terminate the
worker; a watchdog thread keeps reading stdin after the job line and stops on EOF (the
controller went away); a broken stdout stops too. Workers are killed on stop and the lock is
released on every exit path. Workers themselves stop when their stdin (a pipe from the
agent) closes, so even a SIGKILLed agent leaves no worker behind for long.

Job (one JSON line on stdin)::

    {"job_id": str, "artifacts": {"<workload>": "/abs/artifact/dir"},
     "cells": [{"cell_id": str, "workload": str, "bucket": str,
                "engine": "numpy"|"mlx"|"coreml", "config": {...}}],
     "measure": {... node_agent.measure.MeasureSettings ...}}
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from node_agent import measure, stats
from node_agent.lock import AgentLock, LockBusy, agent_home
from node_agent.protocol import Emitter, ProtocolError, decode_event

EXIT_OK = 0
EXIT_FAILED = 1  # stopped (stdin closed, stdout broken) before the job finished
EXIT_BAD_INPUT = 2
EXIT_BUSY = 4

CONTENDED_LOAD_PER_CORE = 1.0
"""1-min load average per core (the agent's own one process not counted) above which a node is busy."""
CONTENDED_TOP_CPU_PERCENT = 50.0
"""Another process using more CPU than this makes the measurement `contended`."""
MEMORY_LIMIT_ENV = "FLEET_AGENT_MEMORY_LIMIT_BYTES"
"""Caps the memory the agent assumes available (headroom on shared nodes; tests)."""
RUNTIME_OVERHEAD_BYTES = 64 * 1024 * 1024
ACTIVATION_FACTOR = 64
"""Activations are estimated as this many times the input bytes (the weights are counted apart)."""
WORKER_TERM_GRACE_S = 5.0

WORKER_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from node_agent.runner import worker_main; sys.exit(worker_main())"
)


class JobError(Exception):
    """A job the agent refuses: `code` is the error event's code; the message names the field."""

    def __init__(self, code: str, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


@dataclass(frozen=True)
class Cell:
    cell_id: str
    workload: str
    bucket: str
    engine: str
    config: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "cell_id": self.cell_id,
            "workload": self.workload,
            "bucket": self.bucket,
            "engine": self.engine,
            "config": self.config,
        }


@dataclass(frozen=True)
class Job:
    job_id: str
    artifacts: dict[str, str]
    cells: list[Cell]
    settings: measure.MeasureSettings


# --- parsing and validation -----------------------------------------------------------------


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise JobError("bad_job", f"{where}{key}: a non-empty string is required, got {value!r}")
    return value


def parse_job(line: str) -> Job:
    """Parse and validate the job line (structure, names, configs, settings). Raises JobError."""
    from node_agent.engines import ENGINE_NAMES, EngineConfigError, validate_config
    from node_agent.workloads import get_workload

    if not line.strip():
        raise JobError("bad_job", "no job on stdin: expected one JSON object on the first line")
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise JobError("bad_job", f"job line is not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise JobError("bad_job", f"job must be a JSON object, got {type(raw).__name__}")
    job_id = _require_str(raw, "job_id", "")
    artifacts = raw.get("artifacts")
    if not isinstance(artifacts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in artifacts.items()
    ):
        raise JobError(
            "bad_job", "artifacts: an object mapping workload name -> artifact directory is required"
        )
    for name, path in artifacts.items():
        if not os.path.isabs(path):
            raise JobError("bad_job", f"artifacts.{name}: {path!r} is not an absolute path")
    cells_raw = raw.get("cells")
    if not isinstance(cells_raw, list) or not cells_raw:
        raise JobError("bad_job", "cells: a non-empty list is required")
    try:
        settings = measure.MeasureSettings.from_dict(raw.get("measure"))
    except measure.SettingsError as exc:
        raise JobError("bad_job", str(exc)) from None
    cells: list[Cell] = []
    seen: set[str] = set()
    for i, cell_raw in enumerate(cells_raw):
        where = f"cells[{i}]."
        if not isinstance(cell_raw, dict):
            raise JobError("bad_job", f"cells[{i}]: must be a JSON object")
        cell_id = _require_str(cell_raw, "cell_id", where)
        if cell_id in seen:
            raise JobError("bad_job", f"{where}cell_id: {cell_id!r} appears twice")
        seen.add(cell_id)
        workload_name = _require_str(cell_raw, "workload", where)
        try:
            workload = get_workload(workload_name)
        except ValueError as exc:
            raise JobError("unknown_workload", f"{where}workload: {exc}") from None
        bucket = _require_str(cell_raw, "bucket", where)
        try:
            workload.bucket(bucket)
        except KeyError as exc:
            raise JobError("bad_job", f"{where}bucket: {exc.args[0]}") from None
        engine = _require_str(cell_raw, "engine", where)
        if engine not in ENGINE_NAMES:
            raise JobError(
                "unknown_engine",
                f"{where}engine: unknown engine {engine!r}; known: {', '.join(ENGINE_NAMES)}",
            )
        try:
            config = validate_config(engine, cell_raw.get("config"))
        except EngineConfigError as exc:
            raise JobError("bad_job", f"{where}{exc}") from None
        if workload_name not in artifacts:
            raise JobError("bad_job", f"artifacts.{workload_name}: missing (needed by {where[:-1]})")
        cells.append(Cell(cell_id, workload_name, bucket, engine, config))
    return Job(job_id, dict(artifacts), cells, settings)


def verify_artifacts(job: Job) -> dict[str, dict[str, Any]]:
    """verify_artifact for every artifact the cells use (hash check). Raises JobError bad_artifact."""
    from node_agent.artifacts import ArtifactError, verify_artifact

    manifests: dict[str, dict[str, Any]] = {}
    for workload in sorted({c.workload for c in job.cells}):
        path = job.artifacts[workload]
        try:
            manifest = verify_artifact(Path(path))
        except (ArtifactError, OSError, ValueError) as exc:
            raise JobError("bad_artifact", f"artifacts.{workload}: {path}: {exc}") from None
        manifests[workload] = dict(manifest)
    return manifests


def available_memory_bytes() -> int | None:
    """Memory the agent may use: MemAvailable (Linux) or physical memory (macOS), capped by the env."""
    available: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            available = None
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if limit:
        try:
            cap = int(limit)
        except ValueError:
            cap = None
        if cap is not None:
            available = cap if available is None else min(available, cap)
    return available


def estimate_memory_bytes(cell: Cell, artifact_dir: str) -> dict[str, int]:
    """inputs + weights + an activations estimate for one cell (checked before allocating)."""
    from node_agent.workloads import get_workload

    bucket = get_workload(cell.workload).bucket(cell.bucket)
    input_bytes = 0
    for shape in bucket.inputs.values():
        count = 1
        for dim in shape:
            count *= dim
        input_bytes += 4 * count
    weights_path = Path(artifact_dir) / "weights.npz"
    weights_bytes = weights_path.stat().st_size if weights_path.exists() else 0
    # Engines hold the npz arrays plus a converted copy (fp16/fp32/device): count weights twice.
    activations = ACTIVATION_FACTOR * input_bytes
    total = 2 * weights_bytes + input_bytes + activations + RUNTIME_OVERHEAD_BYTES
    return {"inputs": input_bytes, "weights": weights_bytes, "activations": activations, "total": total}


def check_memory(job: Job) -> None:
    """JobError too_large when a cell's estimate exceeds the available memory."""
    available = available_memory_bytes()
    if available is None:
        return
    for cell in job.cells:
        estimate = estimate_memory_bytes(cell, job.artifacts[cell.workload])
        if estimate["total"] > available:
            raise JobError(
                "too_large",
                f"cell {cell.cell_id} ({cell.workload}/{cell.bucket}, {cell.engine}): estimated "
                f"{estimate['total'] / 2**20:.1f} MiB (inputs {estimate['inputs']} B, weights "
                f"{estimate['weights']} B, activations ~{estimate['activations']} B, runtime "
                f"{RUNTIME_OVERHEAD_BYTES // 2**20} MiB) exceeds the {available / 2**20:.1f} MiB available",
            )


# --- stopping -------------------------------------------------------------------------------


class Stopper:
    """The stop flag plus the live worker processes to terminate when it is set."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self.signum: int | None = None
        self._workers: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self.event.is_set()

    def stop(self, reason: str, signum: int | None = None) -> None:
        if not self.event.is_set():
            self.reason, self.signum = reason, signum
            self.event.set()
        self.terminate_workers()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._workers.add(proc)
        if self.event.is_set():
            self.terminate_workers()

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._workers.discard(proc)

    def terminate_workers(self) -> None:
        with self._lock:
            workers = list(self._workers)
        for proc in workers:
            if proc.poll() is None:
                try:
                    proc.terminate()
                except OSError:
                    pass

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: object) -> None:
            self.stop(f"received {signal.Signals(signum).name}", signum)

        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, handler)


def start_stdin_watchdog(stream: IO[str], stopper: Stopper) -> threading.Thread:
    """A daemon thread that keeps reading `stream` and stops the job at EOF."""

    def watch() -> None:
        try:
            while stream.readline():
                pass
        except (OSError, ValueError):
            pass
        stopper.stop("stdin closed (the controller went away)")

    thread = threading.Thread(target=watch, name="stdin-watchdog", daemon=True)
    thread.start()
    return thread


# --- per-cell state in the agent -------------------------------------------------------------


@dataclass
class CellState:
    cell: Cell
    status: str = "pending"  # pending | ok | unsupported | failed
    reason: str | None = None
    pooled: array[int] = field(default_factory=lambda: array("q"))
    run_ids: list[int] = field(default_factory=list)
    per_run: list[dict[str, Any]] = field(default_factory=list)
    conditions_before: dict[str, Any] | None = None
    conditions_after: dict[str, Any] | None = None
    thermal_states: list[str | None] = field(default_factory=list)
    contended: list[str] = field(default_factory=list)
    waited_nominal_s: float = 0.0
    mode: str | None = None
    loops: int | None = None
    started: bool = False


def bucket_order(cells: list[Cell], runs: int, seed: int) -> list[list[int]]:
    """Cell indices per run: one seeded shuffle, rotated by one position per run."""
    base = list(range(len(cells)))
    random.Random(seed).shuffle(base)
    orders = []
    for r in range(runs):
        k = r % len(base)
        orders.append(base[k:] + base[:k])
    return orders


def order_seed(job_id: str) -> int:
    return int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16)


def contention(conditions: dict[str, Any], own_pids: set[int]) -> list[str]:
    """Reasons the node looks busy with other work (flagged, never silently measured)."""
    reasons = []
    load = conditions.get("load_avg")
    cores = os.cpu_count() or 1
    if isinstance(load, list) and load:
        per_core = max(0.0, float(load[0]) - 1.0) / cores
        if per_core > CONTENDED_LOAD_PER_CORE:
            reasons.append(f"load average {load[0]} on {cores} cores")
    top = conditions.get("top_cpu")
    if isinstance(top, dict):
        pid, cpu = top.get("pid"), top.get("cpu_percent")
        if pid not in own_pids and isinstance(cpu, int | float) and cpu > CONTENDED_TOP_CPU_PERCENT:
            reasons.append(f"{top.get('command')} (pid {pid}) uses {cpu}% CPU")
    return reasons


def _read_conditions(own_pids: set[int]) -> dict[str, Any]:
    """thermal.read_conditions with the agent's own processes left out of top_cpu."""
    from node_agent.thermal import read_conditions

    try:
        return read_conditions(exclude_pids=sorted(own_pids))
    except Exception as exc:  # conditions are metadata: never fail a cell for them
        return {"error": f"{type(exc).__name__}: {exc}"}


class JobRunner:
    """Runs a validated job: R rounds over the cells, one worker process per (cell, run)."""

    def __init__(self, job: Job, out: Emitter, stopper: Stopper) -> None:
        self.job = job
        self.out = out
        self.stopper = stopper
        self.states = [CellState(cell) for cell in job.cells]
        self.seed = order_seed(job.job_id)
        self.orders = bucket_order(job.cells, job.settings.runs, self.seed)
        self.clock = measure.clock_info()
        self.worker_pids: list[int] = []

    def own_pids(self) -> set[int]:
        """This agent and every worker it started: never counted as contention."""
        return {os.getpid(), *self.worker_pids}

    def stopped(self) -> bool:
        if self.out.broken:
            self.stopper.stop("stdout broken (the controller went away)")
        return self.stopper.is_set()

    def run(self) -> int:
        settings = self.job.settings
        last_run = settings.runs - 1
        for r, order in enumerate(self.orders):
            for index in order:
                state = self.states[index]
                if state.status in ("unsupported", "failed") or self.stopped():
                    continue
                self._run_cell_once(state, r, sustained=r == last_run and settings.sustained_s > 0)
                if self.stopped():
                    break
                if r == last_run or state.status in ("unsupported", "failed"):
                    self._emit_result(state)
                if settings.cooldown_s > 0:
                    self.stopper.event.wait(settings.cooldown_s)
            if self.stopped():
                break
        if self.stopper.is_set():
            self.out.error("stopped", f"job {self.job.job_id} stopped: {self.stopper.reason}")
            return 128 + self.stopper.signum if self.stopper.signum else EXIT_FAILED
        return EXIT_OK

    def _wait_nominal(self, state: CellState, conditions: dict[str, Any]) -> dict[str, Any]:
        limit = self.job.settings.wait_nominal_s
        start = time.monotonic()
        while (
            conditions.get("thermal_pressure") not in (None, "nominal") and time.monotonic() - start < limit
        ):
            self.out.emit(
                "progress",
                cell_id=state.cell.cell_id,
                phase="wait_nominal",
                done=int(time.monotonic() - start),
                total=int(limit),
            )
            if self.stopper.event.wait(1.0):
                break
            conditions = _read_conditions(self.own_pids())
        state.waited_nominal_s += time.monotonic() - start
        return conditions

    def _run_cell_once(self, state: CellState, r: int, *, sustained: bool) -> None:
        cell, settings = state.cell, self.job.settings
        if not state.started:
            state.started = True
            self.out.emit("cell_started", **cell.as_dict())
        before = self._wait_nominal(state, _read_conditions(self.own_pids()))
        if state.conditions_before is None:
            state.conditions_before = before
        state.thermal_states.append(before.get("thermal_pressure"))
        state.contended += contention(before, self.own_pids())
        subjob = {
            "cell": cell.as_dict(),
            "artifact_dir": self.job.artifacts[cell.workload],
            "run": r,
            "measure": settings.as_dict(),
            "sustained_s": settings.sustained_s if sustained else 0.0,
            "numeric": settings.numeric and r == 0,
            "compute_plan": r == 0,
            "force_mode": state.mode,
            "force_loops": state.loops,
        }
        result = self._spawn_worker(state, r, subjob)
        after = _read_conditions(self.own_pids())
        state.conditions_after = after
        state.thermal_states.append(after.get("thermal_pressure"))
        if result is None:
            return
        status = result.get("status")
        if status != "ok":
            state.status, state.reason = str(status), result.get("reason")
            return
        record = result.get("summary") or {}
        state.mode = state.mode or record.get("mode")
        state.loops = state.loops or record.get("loops")
        state.thermal_states += record.get("thermal_states", [])
        state.contended += record.get("contended", [])
        record["conditions"] = {"before": before, "after": after}
        state.per_run.append(record)

    def _spawn_worker(self, state: CellState, r: int, subjob: dict[str, Any]) -> dict[str, Any] | None:
        """Run one worker; relay its events; return its cell_result fields (None when stopped)."""
        cell_id = state.cell.cell_id
        argv = [sys.executable, "-u", "-c", WORKER_BOOT, code_root()]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stopper.add(proc)
        self.worker_pids.append(proc.pid)
        stderr_tail: deque[str] = deque(maxlen=40)
        drain = threading.Thread(target=_drain_stderr, args=(proc, stderr_tail), daemon=True)
        drain.start()
        self.out.emit(
            "progress",
            cell_id=cell_id,
            phase="run",
            done=r,
            total=self.job.settings.runs,
            worker_pid=proc.pid,
        )
        result: dict[str, Any] | None = None
        try:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write((json.dumps(subjob) + "\n").encode())
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            # stdin stays open: its EOF tells the worker the agent is gone.
            for raw in proc.stdout:
                try:
                    event = decode_event(raw)
                except ProtocolError as exc:
                    self.out.warning("worker_output", f"cell {cell_id} run {r}: {exc}", cell_id=cell_id)
                    continue
                kind = event.pop("type")
                event.pop("schema", None)
                if kind == "cell_result":
                    result = event
                    continue
                if kind == "samples" and event.get("phase") == "measure":
                    ns = event.get("ns", [])
                    state.pooled.extend(ns)
                    state.run_ids.extend([r] * len(ns))
                self.out.emit(kind, **event)
                if self.stopped():
                    break
        finally:
            if self.stopper.is_set() and proc.poll() is None:
                proc.terminate()
            _close_quietly(proc.stdin)
            try:
                code = proc.wait(timeout=WORKER_TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            drain.join(timeout=2)
            _close_quietly(proc.stdout)
            self.stopper.discard(proc)
        if self.stopper.is_set():
            return None
        if result is None:
            tail = "".join(stderr_tail).strip()[-1500:]
            return {"status": "failed", "reason": f"worker exited with code {code} without a result: {tail}"}
        return result

    def _emit_result(self, state: CellState) -> None:
        cell = state.cell
        if state.status in ("unsupported", "failed"):
            summary = {"per_run": state.per_run} if state.per_run else {}
            self.out.emit(
                "cell_result", cell_id=cell.cell_id, status=state.status, reason=state.reason, summary=summary
            )
            return
        state.status = "ok"
        self.out.emit(
            "cell_result", cell_id=cell.cell_id, status="ok", reason=None, summary=self.cell_summary(state)
        )

    def cell_summary(self, state: CellState) -> dict[str, Any]:
        """The cell's summary over its runs (stats.cell_summary: run-level intervals) + context."""
        from node_agent.workloads import get_workload

        per_run = state.per_run
        first = per_run[0] if per_run else {}
        mode = state.mode or "latency"
        loops = state.loops or 1
        settings = self.job.settings
        # state.pooled holds raw elapsed ns of `loops` calls; stats divides as floats.
        summary = stats.cell_summary(
            state.pooled,
            state.run_ids,
            per_run,
            loops=loops,
            micro=mode == "micro",
            clock_resolution_ns=self.clock["resolution_ns"],
            want_p99=settings.p99,
            epsilon=settings.epsilon,
        )
        flags: list[str] = list(summary.get("flags", []))
        warmup_converged = all(p.get("warmup_converged", True) for p in per_run)
        if not warmup_converged:
            flags.append("warmup_unconverged")
        sustained_run = next((p for p in per_run if p.get("drift") is not None), None)
        drift = sustained_run.get("drift") if sustained_run else None
        if drift and drift.get("flag"):
            flags.append("thermal_drift")
        if measure.thermal_state_changed(state.thermal_states):
            flags.append("thermal_state_changed")
        before = state.conditions_before or {}
        if before.get("power_source") == "battery":
            flags.append("on_battery")
        if before.get("low_power_mode"):
            flags.append("low_power_mode")
        if state.contended:
            flags.append("contended")
        if any(p.get("first_load_on_host") for p in per_run):
            flags.append("first_load_on_host")
        workload = get_workload(state.cell.workload)
        tokens_per_s = None
        if workload.tokens_per_call and summary.get("p50"):
            tokens_per_s = workload.tokens_per_call * 1e9 / summary["p50"]
        summary.update(
            mode=mode,
            inner_loops=1,
            cold_start={
                **(first.get("cold_start") or {}),
                "first_load_on_host": bool(first.get("first_load_on_host")),
            },
            per_run=stats.merge_run_details([_small_run(p) for p in per_run], summary),
            burst=drift.get("burst") if drift else None,
            sustained=drift.get("sustained") if drift else None,
            drift=drift,
            numeric=first.get("numeric"),
            memory_peak_bytes=max((p.get("memory_peak_bytes") or 0 for p in per_run), default=None) or None,
            conditions={"before": state.conditions_before, "after": state.conditions_after},
            contended=state.contended,
            waited_nominal_s=round(state.waited_nominal_s, 3),
            flags=sorted(set(flags)),
            tokens_per_s=tokens_per_s,
            compute_plan=first.get("compute_plan"),
            warmup={
                "n": sum(int(p.get("n_warmup", 0)) for p in per_run),
                "converged": warmup_converged,
                "per_run": [p.get("n_warmup") for p in per_run],
            },
            clock=self.clock,
            bucket_order_seed=self.seed,
            bucket_order=[[self.job.cells[i].cell_id for i in order] for order in self.orders],
            engine_info=first.get("engine_info"),
            worker_pids=[p.get("pid") for p in per_run],
        )
        return summary


def _small_run(record: dict[str, Any]) -> dict[str, Any]:
    """The per-run line of a summary (no raw data, no conditions detail beyond pressure)."""
    keep = (
        "run",
        "pid",
        "n",
        "n_warmup",
        "warmup_converged",
        "p50",
        "p95",
        "duration_s",
        "stop_reason",
        "cold_start",
        "first_load_on_host",
        "memory_peak_bytes",
        "loops",
        "sustained_n",
    )
    small = {k: record.get(k) for k in keep}
    conditions = record.get("conditions") or {}
    small["thermal"] = [
        (conditions.get("before") or {}).get("thermal_pressure"),
        (conditions.get("after") or {}).get("thermal_pressure"),
    ]
    return small


def _drain_stderr(proc: subprocess.Popen[bytes], tail: deque[str]) -> None:
    """Forward a worker's stderr to the agent's (logs) and keep its tail for failure reasons."""
    assert proc.stderr is not None
    for raw in proc.stderr:
        text = raw.decode("utf-8", "replace")
        tail.append(text)
        try:
            sys.stderr.write(text)
        except (OSError, ValueError):
            pass
    _close_quietly(proc.stderr)


def _close_quietly(stream: IO[bytes] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except OSError:
            pass


def code_root() -> str:
    """The sys.path entry holding node_agent: the zipapp, or the source tree's root."""
    import node_agent

    return os.path.dirname(os.path.dirname(os.path.abspath(node_agent.__file__)))


# --- the run command ------------------------------------------------------------------------


def run_job_from_stdin(out: Emitter, stdin: IO[str] | None = None) -> int:
    """Read one job line from stdin, validate it, hold the node lock, run it. Returns the exit code."""
    stream = stdin if stdin is not None else sys.stdin
    stopper = Stopper()
    stopper.install_signal_handlers()
    try:
        line = stream.readline()
    except (OSError, UnicodeDecodeError) as exc:
        out.error("bad_job", f"cannot read the job from stdin: {exc}")
        return EXIT_BAD_INPUT
    try:
        job = parse_job(line)
    except JobError as exc:
        out.error(exc.code, str(exc))
        return exc.exit_code
    lock = AgentLock(job.job_id, command="run")
    try:
        lock.acquire()
    except LockBusy as exc:
        out.emit("busy", holder=exc.holder)
        return EXIT_BUSY
    try:
        if lock.took_over is not None:
            out.warning("stale_lock", f"took over a stale lock: {json.dumps(lock.took_over)}")
        start_stdin_watchdog(stream, stopper)
        try:
            verify_artifacts(job)
            check_memory(job)
        except JobError as exc:
            out.error(exc.code, str(exc))
            return exc.exit_code
        return JobRunner(job, out, stopper).run()
    finally:
        stopper.terminate_workers()
        lock.release()


# --- the worker process ---------------------------------------------------------------------


def _first_load_marker(subjob: dict[str, Any], manifest: dict[str, Any]) -> bool:
    """True the first time this (artifact, engine config, bucket) is loaded on this host."""
    cell = subjob["cell"]
    files = manifest.get("files", {})
    key = json.dumps(
        [cell["workload"], cell["bucket"], cell["engine"], cell["config"], sorted(files.items())],
        sort_keys=True,
    )
    marker_dir = agent_home() / "first-load"
    marker_dir.mkdir(parents=True, exist_ok=True)
    marker = marker_dir / hashlib.sha256(key.encode()).hexdigest()[:32]
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def worker_main() -> int:
    """One run of one cell in this fresh process (spawned by JobRunner; job line on stdin)."""
    # Libraries sometimes print to stdout; the protocol stream keeps its own fd, fd 1 goes to stderr.
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    out = Emitter(open(protocol_fd, "w", encoding="utf-8", closefd=True))  # noqa: SIM115
    stopper = Stopper()
    stopper.install_signal_handlers()
    line = sys.stdin.readline()
    try:
        subjob = json.loads(line)
    except json.JSONDecodeError:
        out.error("bad_job", "worker: no sub-job on stdin")
        return EXIT_BAD_INPUT
    start_stdin_watchdog(sys.stdin, stopper)
    cell = subjob["cell"]
    try:
        result = _worker_run(subjob, out, stopper)
    except Exception as exc:
        import traceback

        traceback.print_exc(file=sys.stderr)
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "summary": {}}
    if stopper.is_set() and result.get("status") == "ok":
        return EXIT_FAILED
    out.emit("cell_result", cell_id=cell["cell_id"], **result)
    return EXIT_OK


def _worker_run(subjob: dict[str, Any], out: Emitter, stopper: Stopper) -> dict[str, Any]:
    from node_agent.engines import make_engine, precision_of

    cell = subjob["cell"]
    cell_id, run = cell["cell_id"], subjob["run"]
    engine = make_engine(cell["engine"], cell["config"])
    reason = engine.check_supported()
    if reason is not None:
        return {"status": "unsupported", "reason": reason, "summary": {}}
    artifact_dir = Path(subjob["artifact_dir"])
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    manifest.setdefault("workload", cell["workload"])
    settings = measure.MeasureSettings.from_dict(subjob["measure"])

    first_load = _first_load_marker(subjob, manifest)
    cold = engine.load(artifact_dir, manifest, cell["bucket"])

    def sink(phase: str, ns: array[int], t_ns: array[int], thermal: str | None) -> None:
        if not out.emit(
            "samples",
            cell_id=cell_id,
            run=run,
            phase=phase,
            ns=ns.tolist(),
            t_ns=t_ns.tolist(),
            thermal=thermal,
        ):
            stopper.stop("stdout broken")

    def progress(phase: str, done: int, total: int) -> None:
        out.emit("progress", cell_id=cell_id, run=run, phase=phase, done=done, total=total)

    def on_thermal(t_ns: int, state: dict[str, Any]) -> None:
        out.emit("thermal", cell_id=cell_id, run=run, t_ns=t_ns, state=state)

    from node_agent.thermal import read_conditions

    own_pids = {os.getpid(), os.getppid()}  # this worker and the agent that started it

    def conditions_now() -> dict[str, Any]:
        return read_conditions(exclude_pids=sorted(own_pids))

    harness = measure.Harness(
        engine,
        settings,
        sink,
        progress=progress,
        stop=stopper,
        read_conditions=conditions_now,
        on_thermal=on_thermal,
        force_mode=subjob.get("force_mode"),
        force_loops=subjob.get("force_loops"),
    )
    record = harness.measure_run(sustained_s=float(subjob.get("sustained_s") or 0.0))
    if stopper.is_set():
        return {"status": "ok", "summary": {}}
    ordered = sorted(record.measured)
    summary: dict[str, Any] = {
        "run": run,
        "pid": os.getpid(),
        "mode": record.mode,
        "loops": record.loops,
        "n": len(record.measured),
        "n_warmup": len(record.warmup),
        "warmup_converged": record.warmup_converged,
        "p50": stats.nearest_rank(ordered, 0.5) if ordered else None,
        "p95": stats.nearest_rank(ordered, 0.95) if ordered else None,
        "duration_s": record.duration_s,
        "stop_reason": record.stop_reason,
        "cold_start": {**cold.as_ms(), "compile_cached": cold.compile_cached},
        "first_load_on_host": first_load,
        "calibration": record.calibration,
        "sustained_n": len(record.sustained),
        "sustained_duration_s": record.sustained_duration_s,
        "thermal_states": [
            e["state"].get("thermal_pressure")
            for e in record.thermal_timeline
            if isinstance(e.get("state"), dict)
        ],
        "drift": measure.drift_of(record),
        "contended": sorted(
            {
                reason
                for e in record.thermal_timeline
                if isinstance(e.get("state"), dict)
                for reason in contention(e["state"], own_pids)
            }
        ),
    }
    summary["memory_peak_bytes"] = engine.peak_memory_bytes()
    if subjob.get("numeric"):
        summary["numeric"] = _numeric(engine, cell, precision_of(cell["engine"], cell["config"]))
    if subjob.get("compute_plan") and cell["engine"] == "coreml":
        from node_agent.compute_plan import compute_plan_for

        compiled = getattr(engine, "compiled_path", None)
        summary["compute_plan"] = (
            compute_plan_for(compiled, cell["config"]["compute_units"]) if compiled else None
        )
    summary["engine_info"] = engine.info()
    return {"status": "ok", "reason": None, "summary": summary}


def _numeric(engine: Any, cell: dict[str, Any], precision: str) -> dict[str, Any]:
    """The numeric gate on the bucket's eval set, plus a digest of the raw outputs."""
    import numpy as np

    from node_agent.engines.numpy_ref import example, reference_of
    from node_agent.numeric import compare, output_digest

    model = engine.model
    inputs = model.eval_inputs
    count = len(next(iter(inputs.values())))
    outputs = np.stack([np.asarray(engine.outputs(example(inputs, i))) for i in range(count)])
    reference = reference_of(model)
    result = compare(
        outputs,
        reference,
        model.workload.tolerances[precision],
        output_kind=model.workload.output_kind,
        precision=precision,
    )
    result["output_digest"] = output_digest(outputs)
    return result
