"""The sweep scheduler: nodes in parallel, one agent job at a time per node, everything stored as
it arrives.

Job granularity: one agent job per (node, workload), holding every bucket x engine config of
that workload still to run on the node. The agent measures each cell in R fresh worker
processes with the cell order rotated between runs (docs/MEASUREMENT.md, "Intervals"), one worker at a time,
so measurements never overlap on a node; grouping a whole workload lets that interleaving cover
the engine configs too, which is what the coreml-vs-MLX gate compares within a bucket. Jobs of
one node run one after another (asyncio task per node); the agent's lock keeps other sweeps out.

Per job: connect (reused), deploy the agent (once), upload the workload's artifact (once per
node), then stream the agent's events: cell_started -> cell `running` (a new attempt),
samples -> one committed batch each, thermal -> timeline, cell_result -> result + final state.

Faults are the node's, never the run's: a NodeError (SSH drop, crash, bad JSON, bad event
content) marks the job's cells without a result `lost` and the job is retried with exponential
backoff up to scheduler.max_attempts; a node still failing is declared lost (its remaining
cells stay `lost`) while the others continue. An agent silent past its job's liveness bound or
running past its deadline (`job_bounds`) is such a fault too (kind `hung`). A cell the agent
reports `failed` is re-run while its stored attempts (every job that held it counts) are below
scheduler.max_attempts. A node whose agent says `busy` is polled with backoff up to
scheduler.busy_wait_s (on_busy = "wait") or skipped (on_busy = "skip"), its cells `lost` with
reason "busy: held by ...".

`run_sweep` drives a whole sweep: start probes (facts snapshots, which also decide unsupported
cells), the run and its cells in the store, the node tasks, end probes, gates, run status.
Setting `stop` (the CLI does on SIGINT / SIGTERM) cancels the node tasks: every remote agent is
terminated (terminate -> wait 5 s -> kill, stdin closed), all data kept, cells that were
`running` back to `pending` (reason "interrupted ..."), the run `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from fleet_tui.analysis.gates import GateReport, evaluate_gates
from fleet_tui.display import clean, format_ns_as_ms
from fleet_tui.fleet.agent import agent_events
from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind
from fleet_tui.model.exit_codes import ExitCode
from fleet_tui.store import RESULT_STATUSES, CellRow, Store, StoreError
from fleet_tui.sweep.artifacts import Artifact, UploadResult, upload_artifact
from fleet_tui.sweep.counters import SweepCounters, phase_text
from fleet_tui.sweep.events import BadEvent, EventOrder, Progress, SampleBudget, check_content
from fleet_tui.sweep.plan import build_plan
from node_agent.protocol import AgentExit, CellResultEvent, SamplesEvent, ThermalEvent

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node
    from fleet_tui.config.spec import SweepSpec
    from fleet_tui.fleet.session import FleetConnections

T = TypeVar("T")


BACKOFF_CAP_S: Final = 60.0
BUSY_POLL_FIRST_S: Final = 0.5
BUSY_POLL_CAP_S: Final = 10.0
END_PROBE_TIMEOUT_S: Final = 60.0
TERMINATE_BUDGET_S: Final = 15.0
"""How long cancelled node tasks get to stop their agents (terminate, wait 5 s, kill, wait)."""

LIVENESS_FLOOR_ENV: Final = "FLEET_TUI_LIVENESS_FLOOR_S"
LIVENESS_FLOOR_S: Final = 300.0
"""Silence every job may keep on top of what its spec implies: interpreter start, imports, a
model load or compile, none of which the spec bounds. $FLEET_TUI_LIVENESS_FLOOR_S overrides it
(seconds; tests make it small, a node with very slow model loads larger)."""
SLOW_CALL_BUDGETS: Final = 10.0
"""One inference may take this many times its bucket's budget before its silence counts as hung."""
DEADLINE_MARGIN: Final = 2.0

NODE_TEXT_CHARS: Final = 2000
"""How much of a node-supplied message or reason is kept in the store."""

MEASURED_OK: Final = frozenset({"done", "unsupported"})

NEVER_RETRIED: Final = frozenset(
    {
        NodeErrorKind.HOST_KEY_UNKNOWN,
        NodeErrorKind.HOST_KEY_CHANGED,
        NodeErrorKind.HOST_KEY_REVOKED,
        NodeErrorKind.AUTH_FAILED,
        NodeErrorKind.CONFIG,
        NodeErrorKind.CONTROLLER_ERROR,
    }
)
"""Node errors that waiting cannot cure: the operator must act (trust a key, fix the inventory),
then `--resume` the run."""


class Interrupted(Exception):
    """The sweep was stopped (SIGINT / SIGTERM) while `what` was under way."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass
class NodeReport:
    """What happened on one node during this invocation (also the benchmark's figures)."""

    node: str
    cells: int = 0
    lost: bool = False
    skipped_busy: bool = False
    error: str | None = None
    wall_s: float = 0.0
    jobs: int = 0
    agent_s: float = 0.0
    """Sum over jobs of the agent's own time (hello -> done, as received by the controller)."""
    launch_s: float = 0.0
    """Sum over jobs of start -> hello (process/channel start, interpreter, agent import)."""
    measured_s: float = 0.0
    """Sum of the agent-reported duration_s of the cells that finished (measuring only)."""
    busy_wait_s: float = 0.0
    uploads: list[UploadResult] = field(default_factory=list)
    retries: int = 0


@dataclass
class SweepResult:
    run_id: int | None
    status: str
    exit_code: int
    report: GateReport
    cells: dict[str, int]
    nodes: dict[str, NodeReport]
    wall_s: float
    schedule_s: float = 0.0
    """Wall time of the node tasks (cells and end probes), without start probes and gates."""
    problem_cells: list[CellRow] = field(default_factory=list)
    """Cells not done/unsupported at the end (lost, failed, pending, running)."""
    interrupted_signal: str | None = None


@dataclass
class Job:
    """One running agent job: its cells by wire id and what it told us."""

    cells: dict[str, CellRow]
    started: float
    hello_at: float | None = None
    busy_holder: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    bad_artifact: bool = False
    done: dict[str, Any] | None = None
    began: set[int] = field(default_factory=set)
    """Cells whose attempt this job has counted (cell_started, or a result without it)."""
    finished: set[int] = field(default_factory=set)
    """Cells that got their cell_result in this job."""


@dataclass(frozen=True)
class JobBounds:
    """How long one agent job may stay silent (`idle_s`) and run in all (`deadline_s`)."""

    idle_s: float
    deadline_s: float


def job_bounds(spec: SweepSpec, cells: Sequence[CellRow], floor_s: float = LIVENESS_FLOOR_S) -> JobBounds:
    """The liveness bounds of a job over `cells`, from its spec (docs/ROBUSTNESS.md, "Hung agents").

    Silence: the longest gap the method leaves between two events (a cooldown, a wait for nominal
    pressure, a warmup or measurement at its max_duration_s cap, one slow inference), plus the
    floor. Deadline: the plan's per-cell estimate with warmup and measurement at their caps and
    every wait taken in full, times DEADLINE_MARGIN, plus the floor.
    """
    m = spec.measure
    budgets_s = [spec.budget_ms(c.workload, c.bucket) / 1000.0 for c in cells] or [0.0]
    slow_call_s = SLOW_CALL_BUDGETS * max(budgets_s)
    idle = floor_s + m.cooldown_s + m.wait_nominal_s + m.max_duration_s + slow_call_s
    per_run = [
        2 * m.max_duration_s + m.cooldown_s + m.wait_nominal_s + SLOW_CALL_BUDGETS * budget
        for budget in budgets_s
    ]
    ceiling = sum(m.runs * run_s + m.sustained_minutes * 60.0 for run_s in per_run)
    return JobBounds(idle_s=idle, deadline_s=floor_s + DEADLINE_MARGIN * ceiling)


def liveness_floor(env: Mapping[str, str]) -> tuple[float, str | None]:
    """The liveness floor from $FLEET_TUI_LIVENESS_FLOOR_S (or the default), and a warning when
    the variable is set but not a usable number of seconds."""
    raw = env.get(LIVENESS_FLOOR_ENV, "")
    if not raw:
        return LIVENESS_FLOOR_S, None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= 86_400:
        return LIVENESS_FLOOR_S, (
            f"{LIVENESS_FLOOR_ENV}={clean(raw, 40)!s} is not a number of seconds in (0, 86400]; "
            f"using {LIVENESS_FLOOR_S:g} s"
        )
    return value, None


@dataclass
class JobChecks:
    """The checks of one job's event stream."""

    order: EventOrder
    budget: SampleBudget


def describe_holder(holder: object) -> str:
    """A lock holder dict as short text: "pid 123 on host (job run4-..., since ...)"."""
    if not isinstance(holder, Mapping):
        return str(holder)
    text = f"pid {holder.get('pid')} on {holder.get('host')}"
    extras = [f"job {holder['job_id']}"] if holder.get("job_id") else []
    if holder.get("started"):
        extras.append(f"since {holder['started']}")
    return text + (f" ({', '.join(extras)})" if extras else "")


class SweepScheduler:
    """Runs the given cells of a stored run on their nodes (one task per node)."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        spec: SweepSpec,
        nodes: Sequence[Node],
        artifacts: Mapping[str, Artifact],
        connections: FleetConnections,
        progress: Progress,
        *,
        cache: Path | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.spec = spec
        self.nodes = {n.name: n for n in nodes}
        self.artifacts = artifacts
        self.connections = connections
        self.progress = progress
        self.cache = cache
        self.state: dict[int, str] = {}
        self.attempts: dict[int, int] = {}
        """Mirror of the store's cells.attempts (a resumed cell brings its earlier attempts)."""
        self.reports: dict[str, NodeReport] = {}
        self._uploaded: dict[str, dict[str, str]] = {}  # node -> workload -> remote dir
        self._force_upload: set[tuple[str, str]] = set()
        self.counters = SweepCounters((), spec)
        self.liveness_floor_s, warning = liveness_floor(os.environ)
        if warning:
            progress.emit("warning", message=warning)

    # -- the whole fleet --

    async def run(self, cells: Sequence[CellRow]) -> dict[str, NodeReport]:
        """Run `cells` (grouped by node) to the end; returns a report per node."""
        by_node: dict[str, list[CellRow]] = {}
        for cell in cells:
            by_node.setdefault(cell.node, []).append(cell)
        self.adopt(cells)
        tasks = [
            asyncio.create_task(self._node_task(self.nodes[name], node_cells), name=f"sweep:{name}")
            for name, node_cells in by_node.items()
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            # Give cancelled tasks time to stop their agents; a stuck one must not hang us.
            if tasks:
                await asyncio.wait(tasks, timeout=TERMINATE_BUDGET_S)
        return self.reports

    def adopt(self, cells: Sequence[CellRow]) -> None:
        """Take `cells` (as stored) as the ones this scheduler runs and counts."""
        for cell in cells:
            self.state[cell.id] = cell.state
            self.attempts[cell.id] = cell.attempts
        self.counters = SweepCounters(cells, self.spec)

    # -- one node --

    async def _node_task(self, node: Node, cells: list[CellRow]) -> None:
        report = self.reports.setdefault(node.name, NodeReport(node.name, cells=len(cells)))
        started = time.perf_counter()
        groups: dict[str, list[CellRow]] = {}
        for cell in cells:
            groups.setdefault(cell.workload, []).append(cell)
        try:
            for workload, group in groups.items():
                if not await self._run_group(node, workload, group, report):
                    # The node is gone (or busy): the workloads not reached are lost with it.
                    reason = report.error or "node lost"
                    for cell in cells:
                        if self.state[cell.id] in ("pending", "running"):
                            self._mark(cell, "lost", reason)
                    break
            finished = sum(1 for c in cells if self.state[c.id] in MEASURED_OK)
            kind = "node_lost" if report.lost or report.skipped_busy else "node_done"
            text = (
                f"{'lost' if report.lost else 'skipped' if report.skipped_busy else 'done'}: "
                f"{finished}/{len(cells)} cell(s) finished"
            )
            if report.error and kind == "node_lost":
                text += f" ({report.error})"
            self.progress.emit(kind, node=node.name, message=text, finished=finished, cells=len(cells))
        finally:
            report.wall_s = time.perf_counter() - started
        if not (report.lost or report.skipped_busy):
            # The end snapshot is taken as soon as this node is done, while others still measure.
            await probe_end(self.store, self.run_id, node, self.connections, self.progress)

    async def _run_group(self, node: Node, workload: str, group: list[CellRow], report: NodeReport) -> bool:
        """Run one workload's cells on a node, retrying; False when the node is lost or skipped.

        Up to scheduler.max_attempts jobs per call. A lost job (NodeError) is retried with
        backoff; a cell that failed is re-run while its stored attempts stay below the limit
        (so a resumed run does not give a failing cell a fresh budget).
        """
        scheduler = self.spec.scheduler
        attempt = 0
        busy_since: float | None = None
        busy_pause = BUSY_POLL_FIRST_S
        while True:
            todo = [c for c in group if self._needs_run(c)]
            if not todo:
                return True
            if attempt >= scheduler.max_attempts:
                return True  # cells keep their failed state; the run is incomplete
            attempt += 1
            job = Job(cells={str(c.id): c for c in todo}, started=time.perf_counter())
            try:
                await self._run_job(node, workload, job, attempt, report)
            except NodeError as exc:
                report.error = f"{exc.kind}: {exc.message}"
                self.close_job(node, job, "lost", report.error)
                await self.connections.drop(node)
                if attempt >= scheduler.max_attempts or exc.kind in NEVER_RETRIED:
                    report.lost = True
                    return False
                pause = min(BACKOFF_CAP_S, scheduler.retry_backoff_s * 2 ** (attempt - 1))
                report.retries += 1
                self.progress.emit(
                    "retry",
                    node=node.name,
                    message=f"{report.error}; retry {attempt + 1}/{scheduler.max_attempts} in {pause:g} s",
                    attempt=attempt,
                    error=exc.to_dict(),
                )
                await asyncio.sleep(pause)
                continue
            if job.busy_holder is None:
                busy_since = None
                if job.bad_artifact:
                    self._force_upload.add((node.name, workload))
                continue
            attempt -= 1  # a busy node measured nothing: not an attempt
            holder = describe_holder(job.busy_holder)
            now = time.monotonic()
            busy_since = busy_since if busy_since is not None else now
            waited = now - busy_since
            if scheduler.on_busy == "skip" or waited >= scheduler.busy_wait_s:
                note = "" if scheduler.on_busy == "skip" else f" (waited {waited:.0f} s)"
                report.error = f"busy: held by {holder}{note}"
                report.skipped_busy = True
                self.progress.emit("busy", node=node.name, message=f"skipped: {report.error}")
                return False
            pause = max(0.05, min(busy_pause, scheduler.busy_wait_s - waited))
            busy_pause = min(BUSY_POLL_CAP_S, busy_pause * 2)
            self.progress.emit(
                "busy",
                node=node.name,
                message=f"busy: held by {holder}; waiting (up to {scheduler.busy_wait_s:g} s)",
                holder=job.busy_holder,
            )
            await asyncio.sleep(pause)
            report.busy_wait_s += pause

    def _needs_run(self, cell: CellRow) -> bool:
        state = self.state[cell.id]
        if state in ("pending", "running", "lost"):
            return True
        return state == "failed" and self.attempts[cell.id] < self.spec.scheduler.max_attempts

    def close_job(self, node: Node, job: Job, state: str, reason: str) -> None:
        """Mark the job's cells without a result of their own `state` (lost / failed).

        A cell the agent never started still spent an attempt in this job: it is counted here.
        """
        for cell in job.cells.values():
            if cell.id in job.finished:
                continue
            self._mark(cell, state, reason, new_attempt=cell.id not in job.began)
            if state == "failed":
                self.progress.emit(
                    "cell_result", node=node.name, message=f"FAILED {cell.key}: {reason}", cell=cell.key
                )

    def _mark(self, cell: CellRow, state: str, reason: str | None, *, new_attempt: bool = False) -> None:
        self.store.mark_cell(cell.id, state, reason, attempt_inc=new_attempt)
        self.state[cell.id] = state
        self.attempts[cell.id] += 1 if new_attempt else 0
        if state not in ("pending", "running"):
            self.counters.finish(cell.id)  # failed or lost: no longer ahead of the sweep

    # -- one job --

    async def _prepare(self, node: Node, workload: str, report: NodeReport) -> tuple[Any, str, str]:
        """Connected transport, the agent's remote path and the artifact's remote dir."""
        self.progress.emit("node_status", node=node.name, message="connecting")
        transport = await self.connections.transport(node)
        remote_agent, deployed = await self.connections.agent_path(node, transport)
        if deployed.status != "present":
            self.progress.emit(
                "deploy",
                node=node.name,
                message=f"agent {deployed.status} ({deployed.bytes} bytes)",
                status=deployed.status,
            )
        artifact = self.artifacts[workload]
        uploaded = self._uploaded.setdefault(node.name, {})
        force = (node.name, workload) in self._force_upload
        if workload not in uploaded or force:
            self.progress.emit("node_status", node=node.name, message=f"artifact {workload}: checking")
            result = await upload_artifact(transport, artifact, force=force, cache=self.cache)
            self._force_upload.discard((node.name, workload))
            report.uploads.append(result)
            uploaded[workload] = result.remote_path
            self.progress.emit(
                "artifact",
                node=node.name,
                message=f"artifact {workload} {artifact.artifact_id}: {result.status}"
                + (f" ({result.bytes / 1e6:.1f} MB)" if result.bytes else ""),
                workload=workload,
                artifact_id=artifact.artifact_id,
                status=result.status,
                bytes=result.bytes,
            )
        return transport, remote_agent, uploaded[workload]

    async def _run_job(self, node: Node, workload: str, job: Job, attempt: int, report: NodeReport) -> None:
        """One agent job over `job.cells`; what it says is stored as it arrives. Raises NodeError."""
        transport, remote_agent, artifact_dir = await self._prepare(node, workload, report)
        todo = list(job.cells.values())
        job_id = f"run{self.run_id}-{node.name}-{workload}-a{attempt}-{secrets.token_hex(3)}"
        payload = {
            "job_id": job_id,
            "artifacts": {workload: artifact_dir},
            "cells": [c.job_cell() for c in todo],
            "measure": self.spec.measure.to_job(),
        }
        self.progress.emit(
            "job_started",
            node=node.name,
            # The cells' own attempt numbers, as the store records them (a resumed cell's
            # first job here is its attempt 2, not 1).
            message=f"job {workload}: {len(todo)} cell(s), {_attempt_text(todo)}",
            job_id=job_id,
            cells=[c.key for c in todo],
        )
        report.jobs += 1
        checks = JobChecks(EventOrder(job.cells), SampleBudget(self.spec.measure))
        bounds = job_bounds(self.spec, todo, self.liveness_floor_s)
        stream = agent_events(
            transport, remote_agent, "run", payload, idle_s=bounds.idle_s, deadline_s=bounds.deadline_s
        )
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                self.ingest(node, job, checks, event, report)
        self.end_job(node, job, report)

    def end_job(self, node: Node, job: Job, report: NodeReport) -> None:
        """The agent finished the job (its stream ended with `done`)."""
        if job.hello_at is not None:
            report.agent_s += time.perf_counter() - job.hello_at
        if job.busy_holder is None:
            # A cell it said nothing final about failed in this attempt.
            why = "; ".join(job.errors) or "the agent finished without a result for this cell"
            self.close_job(node, job, "failed", why)

    def ingest(
        self, node: Node, job: Job, checks: JobChecks, event: dict[str, Any], report: NodeReport
    ) -> None:
        """One decoded event of a running job: checked against the job (order, content, the spec's
        ceilings), then stored. A violation raises NodeError(PROTOCOL_ERROR) before anything of
        the event is stored or shown."""
        try:
            checks.order.check(event)
            check_content(event)
            checks.budget.check(event)
        except BadEvent as exc:
            raise NodeError(
                NodeErrorKind.PROTOCOL_ERROR, node.name, f"agent sent a bad {event['type']!r} event: {exc}"
            ) from None
        # Only what the node sent can be the node's fault: a store error or a bug below
        # propagates as the controller's own error (never retried on, nor blamed on, a node).
        self._handle(node, job, event, report)

    def _cell(self, job: Job, event: Mapping[str, Any]) -> CellRow:
        # EventOrder has checked that the cell is one of this job's.
        return job.cells[event["cell_id"]]

    def _handle(self, node: Node, job: Job, event: dict[str, Any], report: NodeReport) -> None:
        kind = event["type"]
        if kind == "samples":
            # Checked by decode_event (types, int64 ranges) and EventOrder (after cell_started,
            # so they are never tagged with a previous, lost attempt).
            samples = cast(SamplesEvent, event)
            cell = self._cell(job, samples)
            self.store.add_samples(
                cell.id, samples["run"], samples["phase"], samples["ns"], samples.get("t_ns") or []
            )
            self.progress.emit("samples", node=node.name, cell=cell.key, count=len(samples["ns"]))
        elif kind == "progress":
            if "cell_id" not in event:
                return
            cell = self._cell(job, event)
            run = event.get("run")
            phase, done, total = event.get("phase"), event.get("done"), event.get("total")
            words = phase_text(phase, done, total, run, self.spec.measure.runs)
            text = f"{cell.key} {words} · {self.counters.text()}"
            self.progress.emit(
                "cell_progress",
                node=node.name,
                message=text,
                cell=cell.key,
                phase=event.get("phase"),
                run=run,
                done=event.get("done"),
                total=event.get("total"),
            )
        elif kind == "cell_started":
            cell = self._cell(job, event)
            self._mark(cell, "running", None, new_attempt=True)
            job.began.add(cell.id)
            self.counters.start(cell.id)
            self.progress.emit(
                "cell_started",
                node=node.name,
                message=f"{cell.key} started · {self.counters.text()}",
                cell=cell.key,
            )
        elif kind == "thermal":
            thermal = cast(ThermalEvent, event)
            cell_id = self._cell(job, thermal).id if "cell_id" in thermal else None
            self.store.add_thermal(self.run_id, node.name, thermal["t_ns"], thermal["state"], cell_id)
            self.progress.emit("thermal", node=node.name, state=thermal["state"])
        elif kind == "cell_result":
            self._cell_result(node, job, event, report)
        elif kind == "hello":
            job.hello_at = time.perf_counter()
            report.launch_s += job.hello_at - job.started
        elif kind == "busy":
            job.busy_holder = (
                event.get("holder") if isinstance(event.get("holder"), dict) else {"holder": "?"}
            )
        elif kind == "error":
            code, message = str(event.get("code", "error")), str(event.get("message", ""))
            # Kept as the cells' reason: bounded, a node's 16 MB message is not a reason.
            job.errors.append(f"{code[:NODE_TEXT_CHARS]}: {message[:NODE_TEXT_CHARS]}")
            if code == "bad_artifact":
                job.bad_artifact = True
            self.progress.emit(
                "agent_error",
                node=node.name,
                message=f"agent error {clean(code)} (node says): {clean(message)}",
            )
        elif kind == "warning":
            self.progress.emit(
                "agent_warning",
                node=node.name,
                message=f"warning {clean(event.get('code'))} (node says): {clean(event.get('message'))}",
            )
        elif kind == "done":
            job.done = event
            if event.get("exit_code") == AgentExit.BUSY and job.busy_holder is None:
                job.busy_holder = {"holder": f"unknown (agent exit {int(AgentExit.BUSY)})"}

    def _cell_result(self, node: Node, job: Job, event: Mapping[str, Any], report: NodeReport) -> None:
        result = cast(CellResultEvent, event)
        cell = self._cell(job, result)
        status = result["status"]
        summary = result.get("summary") or {}
        reason = result.get("reason")
        if cell.id not in job.began:
            # A result without cell_started still is an attempt (unsupported cells, mostly).
            self._mark(cell, "running", None, new_attempt=True)
            job.began.add(cell.id)
        self.store.add_result(cell.id, summary, status, str(reason)[:NODE_TEXT_CHARS] if reason else None)
        self.state[cell.id] = RESULT_STATUSES[status]
        job.finished.add(cell.id)
        self.counters.finish(cell.id)
        duration = summary.get("duration_s")
        if isinstance(duration, int | float):
            report.measured_s += float(duration)
        figures = result_figures(summary) if status == "ok" else {}
        if status == "ok":
            p95_ci = figures["p95"]["ci95"] if figures.get("p95") else None
            ci_text = f" [{p95_ci[0]:.3f}, {p95_ci[1]:.3f}]" if p95_ci else ""
            flags = figures.get("flags") or []
            text = (
                f"done {cell.key}: p50 {format_ns_as_ms(summary.get('p50'))} "
                f"p95 {format_ns_as_ms(summary.get('p95'))}{ci_text} "
                f"n={summary.get('n')}" + (f" flags: {', '.join(flags)}" if flags else "")
            )
        else:
            text = f"{status} {cell.key}" + (f" (node says): {clean(reason)}" if reason else "")
        text += f" · {self.counters.text()}"
        self.progress.emit(
            "cell_result", node=node.name, message=text, cell=cell.key, status=status, **figures
        )


def _attempt_text(cells: Sequence[CellRow]) -> str:
    numbers = sorted({c.attempts + 1 for c in cells})
    if len(numbers) == 1:
        return f"attempt {numbers[0]}"
    return f"attempts {numbers[0]}-{numbers[-1]}"


def result_figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A cell summary's headline numbers for `sweep --json`, in milliseconds with the unit named.

    ``{"unit": "ms", "p50": {"value": 1.2, "ci95": [1.1, 1.3] | None}, ..., "n": 662, "runs": 3,
    "interval_method": ..., "flags": [...]}``; a figure the summary lacks is None.
    """
    ci95 = summary.get("ci95") if isinstance(summary.get("ci95"), Mapping) else {}
    figures: dict[str, Any] = {"unit": "ms"}
    for name in ("p50", "p95", "p99"):
        value = summary.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            figures[name] = None
            continue
        bounds = ci95.get(name) if isinstance(ci95, Mapping) else None
        interval = (
            [float(bounds[0]) / 1e6, float(bounds[1]) / 1e6]
            if isinstance(bounds, list | tuple)
            and len(bounds) == 2
            and all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
            else None
        )
        figures[name] = {"value": float(value) / 1e6, "ci95": interval}
    figures["n"] = summary.get("n") if isinstance(summary.get("n"), int) else None
    figures["runs"] = summary.get("runs") if isinstance(summary.get("runs"), int) else None
    method = summary.get("interval_method")
    figures["interval_method"] = method if isinstance(method, str) else None
    flags = summary.get("flags")
    figures["flags"] = [str(f) for f in flags] if isinstance(flags, list) else []
    figures["energy"] = energy_figures(summary.get("energy"))
    return figures


def energy_figures(energy: object) -> dict[str, Any] | None:
    """A summary's energy for `sweep --json`: ``{"status", "reader", "j_per_inference": {"value",
    "ci95"}, "watts_soc", "watts_system"}`` (J and W); None when the cell ran without a reader."""
    if not isinstance(energy, Mapping):
        return None

    def number(value: object) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return float(value)

    reader = energy.get("reader")
    figures: dict[str, Any] = {
        "status": str(energy.get("status")),
        "reader": reader.get("name") if isinstance(reader, Mapping) else None,
    }
    per_inference = energy.get("j_per_inference")
    soc = per_inference.get("soc") if isinstance(per_inference, Mapping) else None
    low, high = (number(soc.get("lo")), number(soc.get("hi"))) if isinstance(soc, Mapping) else (None, None)
    value = number(soc.get("estimate")) if isinstance(soc, Mapping) else None
    figures["j_per_inference"] = (
        None
        if value is None
        else {"value": value, "ci95": [low, high] if low is not None and high is not None else None}
    )
    watts = energy.get("avg_watts")
    figures["watts_soc"] = number(watts.get("soc")) if isinstance(watts, Mapping) else None
    figures["watts_system"] = number(watts.get("system")) if isinstance(watts, Mapping) else None
    return figures


# --- a whole sweep ----------------------------------------------------------------------------------


async def _until_stopped(stop: asyncio.Event, what: str, work: Awaitable[T]) -> T:
    """Await `work` unless `stop` is set first (then cancel it and raise Interrupted)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=TERMINATE_BUDGET_S)
    raise Interrupted(what)


async def probe_start(
    nodes: Sequence[Node], connections: FleetConnections, progress: Progress
) -> dict[str, dict[str, Any] | None]:
    """Facts of every node (None where the probe failed), reusing the sweep's connections."""
    from fleet_tui.fleet.probe import probe_fleet

    facts: dict[str, dict[str, Any] | None] = {}
    async for result in probe_fleet(nodes, connections.settings, connections=connections):
        facts[result.node.name] = result.facts
        if result.ok:
            chip = (result.facts or {}).get("chip")
            progress.emit("probe", node=result.node.name, message=f"probe ok ({chip})", ok=True)
        else:
            error = result.error
            progress.emit(
                "probe",
                node=result.node.name,
                message=f"probe failed: {error}",
                ok=False,
                error=error.to_dict() if error else None,
            )
    return facts


async def probe_end(
    store: Store, run_id: int, node: Node, connections: FleetConnections, progress: Progress
) -> None:
    """The node's facts snapshot at the end of its share of the sweep (a failure is only reported)."""
    from fleet_tui.fleet.session import run_agent_command

    try:
        _, _, _, events = await asyncio.wait_for(
            run_agent_command(node, connections, "probe"), END_PROBE_TIMEOUT_S
        )
    except (NodeError, TimeoutError) as exc:
        progress.emit("probe", node=node.name, message=f"end probe failed: {exc}", ok=False)
        return
    facts = next((e.get("facts") for e in events if e["type"] == "facts"), None)
    if isinstance(facts, dict):
        store.add_probe(node.name, facts, phase="end", run_id=run_id)


def finish_run(
    store: Store, run_id: int, spec: SweepSpec, *, interrupted: bool, strict: bool = False
) -> tuple[str, int, GateReport]:
    """Evaluate and store the gates over the whole run, then set and return its status and exit code.

    `strict`: an inconclusive gate (too little data to decide) fails the run like a failed one.
    """
    report = evaluate_gates(store.outcomes(run_id), spec.gates, spec.budgets())
    store.add_gate_verdicts(run_id, report.verdicts)
    cells = store.cells_for(run_id)
    if interrupted:
        status, code = "interrupted", ExitCode.INTERRUPTED
    elif any(c.state not in MEASURED_OK for c in cells):
        status, code = "incomplete", ExitCode.INCOMPLETE
    else:
        status, code = "complete", ExitCode(report.exit_code(strict=strict))
    store.set_run_status(run_id, status, code)
    return status, code, report


async def run_sweep(
    store: Store,
    spec: SweepSpec,
    nodes: Sequence[Node],
    artifacts: Mapping[str, Artifact],
    connections: FleetConnections,
    progress: Progress,
    stop: asyncio.Event,
    *,
    resume_run: int | None = None,
    cache: Path | None = None,
    versions: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> SweepResult:
    """Run a new sweep of `spec` over `nodes` (the spec's targets), or resume run `resume_run`.

    Raises Interrupted only when stopped before the run exists in the store (nothing written).
    """
    started = time.perf_counter()
    if resume_run is None:
        facts = await _until_stopped(stop, "probing", probe_start(nodes, connections, progress))
        plan = build_plan(spec, nodes, facts)
        store.upsert_nodes(nodes)
        run_id = store.create_run(spec, versions)
        store.add_cells(run_id, plan.cells)
        for name, node_facts in facts.items():
            if node_facts is not None:
                store.add_probe(name, node_facts, phase="start", run_id=run_id)
        cells = store.cells_for(run_id, states=["pending"])
    else:
        run_id = resume_run
        cells = store.unfinished_cells(run_id, spec.scheduler.max_attempts)
        wanted = {c.node for c in cells}
        facts = await _until_stopped(
            stop, "probing", probe_start([n for n in nodes if n.name in wanted], connections, progress)
        )
        # Only now, so a stop while probing leaves the run exactly as it was.
        store.set_run_status(run_id, "running")
        for name, node_facts in facts.items():
            if node_facts is not None:
                store.add_probe(name, node_facts, phase="start", run_id=run_id)
    for artifact in artifacts.values():
        store.add_artifact(artifact.artifact_id, artifact.workload, artifact.manifest)
    progress.emit(
        "run_started",
        message=f"run {run_id} ({spec.name}): {len(cells)} cell(s) to run on "
        f"{len({c.node for c in cells})} node(s)",
        run_id=run_id,
        cells=len(cells),
        resumed=resume_run is not None,
    )
    working = {c.node for c in cells}
    for node in nodes:
        if node.name not in working:
            # Progress for every node: one whose cells are all unsupported has nothing to run.
            planned = len(store.cells_for(run_id, node=node.name))
            progress.emit(
                "node_done",
                node=node.name,
                message=f"done: nothing to run ({planned} cell(s), none runnable here)",
                finished=planned,
                cells=planned,
            )
    scheduler = SweepScheduler(store, run_id, spec, nodes, artifacts, connections, progress, cache=cache)
    interrupted = False
    schedule_started = time.perf_counter()
    try:
        await _until_stopped(stop, "measuring", scheduler.run(cells))
    except Interrupted:
        interrupted = True
    except Exception:
        # The controller's own failure (a store error, a bug), not a node fault: say so in the
        # store if it still works, then let the front end report it.
        with contextlib.suppress(StoreError):
            store.set_run_status(run_id, "failed")
        raise
    schedule_s = time.perf_counter() - schedule_started
    interrupted = interrupted or stop.is_set()
    if interrupted:
        # The agents are stopped: a cell still `running` will not finish in this invocation.
        for cell in store.cells_for(run_id, states=["running"]):
            store.mark_cell(
                cell.id, "pending", f"interrupted during attempt {cell.attempts} (its samples are kept)"
            )
    status, code, report = finish_run(store, run_id, spec, interrupted=interrupted, strict=strict)
    counts: dict[str, int] = {}
    all_cells = store.cells_for(run_id)
    for cell in all_cells:
        counts[cell.state] = counts.get(cell.state, 0) + 1
    return SweepResult(
        run_id=run_id,
        status=status,
        exit_code=code,
        report=report,
        cells=counts,
        nodes=scheduler.reports,
        wall_s=time.perf_counter() - started,
        schedule_s=schedule_s,
        problem_cells=[c for c in all_cells if c.state not in MEASURED_OK],
    )
