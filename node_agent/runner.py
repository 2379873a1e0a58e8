"""The ``run`` command: one job of cells, each measured in R independent worker processes.

Process model (pyperf's, see docs/MEASUREMENT.md): the agent process reads the job, validates it,
takes the node lock and then, for each run r in 0..R-1 and each cell in that run's order
(a seeded shuffle rotated by r, so drift does not alias onto one bucket), spawns a FRESH
worker process (``sys.executable -c <boot> <code root>``: the code root is the zipapp when the
agent runs from one, else the source tree) that loads the model, measures one run and exits.
Cold start is that fresh process's load + compile + first call. The agent relays the
worker's events and pools the measured samples of all runs into the cell's summary.

Lifecycle: SIGTERM / SIGHUP / SIGINT set a stop flag and terminate the
worker; a watchdog thread keeps reading stdin after the job line and stops on EOF (the
controller went away); a broken stdout stops too. Workers are killed on stop and the lock is
released on every exit path. Workers themselves stop when their stdin (a pipe from the
agent) closes, so even a SIGKILLed agent leaves no worker behind for long.

Here: the job runner (`JobRunner`: rounds, worker spawning, `cell_summary`) and the worker's
measurement body (`_worker_run`). The job's shape and parsing live in `node_agent.job`, stopping in
`node_agent.lifecycle`, the worker process's entry point in `node_agent.worker`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from node_agent import measure, stats
from node_agent.job import Cell, Job, JobError, check_memory, parse_job, verify_artifacts
from node_agent.lifecycle import Stopper, start_stdin_watchdog
from node_agent.lock import AgentLock, LockBusy, agent_home
from node_agent.protocol import AgentExit, Emitter, ProtocolError, decode_event
from node_agent.worker import WORKER_BOOT, close_quietly, code_root, drain_stderr

if TYPE_CHECKING:
    from node_agent.energy.meter import RunMeter

CONTENDED_LOAD_PER_CORE = 1.0
"""1-min load average per core (the agent's own one process not counted) above which a node is busy."""
CONTENDED_TOP_CPU_PERCENT = 50.0
"""Another process using more CPU than this makes the measurement `contended`."""
WORKER_TERM_GRACE_S = 5.0

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
            return 128 + self.stopper.signum if self.stopper.signum else AgentExit.FAILED
        return AgentExit.OK

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
        meter = self._start_meter(state)
        try:
            if meter is not None:
                meter.start_collecting()
                # The reader's own CPU use is not another tenant's: never counted as contention.
                subjob["exclude_pids"] = meter.reader_pids()
            result = self._spawn_worker(state, r, subjob)
            energy = None
            if meter is not None and result is not None and result.get("status") == "ok":
                windows = (result.get("summary") or {}).pop("energy_windows", None)
                energy = meter.finish(windows)
        finally:
            if meter is not None:
                meter.close()
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
        if energy is not None:
            record["energy"] = energy
        state.per_run.append(record)

    def _start_meter(self, state: CellState) -> RunMeter | None:
        """The run's power reader, started, with its idle baseline taken (None when energy is off)."""
        settings = self.job.settings
        if settings.energy == "off":
            return None
        from node_agent.energy.meter import RunMeter

        self.out.emit("progress", cell_id=state.cell.cell_id, phase="energy_idle", done=0, total=1)
        meter = RunMeter(settings.energy, settings.energy_interval_ms, self.stopper.event)
        try:
            meter.start_and_idle()
        except BaseException:
            meter.close()
            raise
        if meter.status != "ok" and meter.error:
            self.out.warning(
                "energy", f"cell {state.cell.cell_id}: {meter.error}", cell_id=state.cell.cell_id
            )
        return meter

    def _spawn_worker(self, state: CellState, r: int, subjob: dict[str, Any]) -> dict[str, Any] | None:
        """Run one worker; relay its events; return its cell_result fields (None when stopped)."""
        cell_id = state.cell.cell_id
        argv = [sys.executable, "-u", "-c", WORKER_BOOT, code_root()]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stopper.add(proc)
        self.worker_pids.append(proc.pid)
        stderr_tail: deque[str] = deque(maxlen=40)
        drain = threading.Thread(target=drain_stderr, args=(proc, stderr_tail), daemon=True)
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
            close_quietly(proc.stdin)
            try:
                code = proc.wait(timeout=WORKER_TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            drain.join(timeout=2)
            close_quietly(proc.stdout)
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
        summary = stats.cell_figures(
            state.pooled,
            state.run_ids,
            per_run,
            mode=mode,
            loops=loops,
            clock_resolution_ns=self.clock["resolution_ns"],
            want_p99=settings.p99,
            epsilon=settings.epsilon,
        )
        flags: list[str] = list(summary.get("flags", []))
        warmup_converged = all(p.get("warmup_converged", True) for p in per_run)
        if not warmup_converged:
            flags.append("warmup_unconverged")
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
            inner_loops=1,
            cold_start={
                **(first.get("cold_start") or {}),
                "first_load_on_host": bool(first.get("first_load_on_host")),
            },
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
        if settings.energy != "off":
            from node_agent.energy.meter import cell_energy

            energy = cell_energy(per_run, settings.energy, state.conditions_before)
            summary["energy"] = energy
            # A reader running beside the model is a condition of the cell (latency comparability).
            reader = energy.get("reader")
            summary["power_reader"] = reader.get("name") if isinstance(reader, dict) else None
            if energy.get("status") == "energy_too_short":
                summary["flags"] = sorted({*summary["flags"], "energy_too_short"})
        return summary


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
        return AgentExit.BAD_INPUT
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
        return AgentExit.BUSY
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
        if job.settings.energy != "off":
            from node_agent.energy import stop_all_readers

            stop_all_readers()
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

    # this worker, the agent that started it, and the agent's power reader
    own_pids = {os.getpid(), os.getppid(), *(subjob.get("exclude_pids") or [])}

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
    if settings.energy != "off":
        summary["energy_windows"] = record.energy_windows()
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
