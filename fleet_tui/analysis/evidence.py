"""What a comparison rests on, loaded from the store: per-run statistics, keys, conditions.

The run (one fresh process, one model load) is the unit of replication, so every cell's per-run
p50 / p95 / mean are recomputed here from the raw measure-phase samples of the cell's current
attempt, grouped by run index (nearest-rank quantiles, as the agent publishes them). A stored
sample is the elapsed time of the summary's `loops` calls (more than one in micro-op mode), so
per-call times are elapsed / loops as floats, as the agent computes them. Flags come
from the stored summary; conditions from the run's facts snapshots and the summary.

Latencies here are nanoseconds (the store's unit); the table builders convert to milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet_tui.model.gates import GateVerdict
from fleet_tui.store import CellRow, RunRecord, Store
from node_agent.stats import nearest_rank

ENGINE_LIBRARIES: Mapping[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "mlx": ("mlx", "numpy"),
    "coreml": ("coremltools", "numpy"),
}
"""The libraries whose versions enter a cell's comparability key: the ones its engine loads."""

SETTINGS_IN_KEY: tuple[str, ...] = ("sustained_minutes", "warmup_min")
"""Measurement settings that change *what* is measured (burst or sustained, warm state). Count
settings (runs, floors, epsilon, durations) change only the precision and stay out of the key."""


@dataclass(frozen=True)
class PhaseRuns:
    """Per-run statistics of one phase of a cell, in run order (ns)."""

    run_idx: tuple[int, ...] = ()
    n: tuple[int, ...] = ()
    p50: tuple[float, ...] = ()
    p95: tuple[float, ...] = ()
    mean: tuple[float, ...] = ()
    pooled_sorted: tuple[float, ...] = ()
    """Every sample of the phase, sorted (for single-run order-statistic intervals)."""

    @property
    def runs(self) -> int:
        return len(self.run_idx)

    @property
    def total(self) -> int:
        return sum(self.n)


@dataclass(frozen=True)
class CellEvidence:
    """One stored cell with everything a comparison needs."""

    run_id: int
    cell: CellRow
    summary: Mapping[str, Any] | None
    measure: PhaseRuns
    sustained: PhaseRuns
    cold_start_ms: tuple[float, ...]
    """Per-run cold start (load + compile + first inference) in milliseconds, from the summary."""
    key: tuple[tuple[str, str], ...]
    """The comparability key (see `comparability_key`)."""
    facts: Mapping[str, Any]
    """The node's facts snapshot at the start of the run (latest known when none)."""
    gates: tuple[GateVerdict, ...] = ()

    @property
    def flags(self) -> tuple[str, ...]:
        raw = self.summary.get("flags") if self.summary else None
        return tuple(str(f) for f in raw) if isinstance(raw, list) else ()

    @property
    def row_key(self) -> str:
        return self.cell.key

    @property
    def energy(self) -> Mapping[str, Any] | None:
        """The summary's energy figures (node_agent.energy.meter.cell_energy), None when absent."""
        raw = self.summary.get("energy") if self.summary else None
        return raw if isinstance(raw, Mapping) else None

    def energy_values(self, rail: str = "soc") -> tuple[float, ...]:
        """Joules per inference per run (net of idle) for `rail`: the energy metric's sample."""
        energy = self.energy
        if energy is None or energy.get("status") != "ok":
            return ()
        figure = energy.get("j_per_inference", {}).get(rail)
        values = figure.get("values") if isinstance(figure, Mapping) else None
        if not isinstance(values, list):
            return ()
        return tuple(float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool))

    def conditions(self) -> dict[str, str | None]:
        """Conditions that do not change the key but can change the answer, as text values."""
        before: Mapping[str, Any] = {}
        if self.summary and isinstance(self.summary.get("conditions"), Mapping):
            raw = self.summary["conditions"].get("before")
            before = raw if isinstance(raw, Mapping) else {}
        contended = self.summary.get("contended") if self.summary else None

        def text(value: Any) -> str | None:
            return None if value is None else str(value)

        return {
            "macOS build": text(self.facts.get("os_build")),
            "power source": text(before.get("power_source", self.facts.get("power_source"))),
            "Low Power Mode": text(before.get("low_power_mode", self.facts.get("low_power_mode"))),
            "thermal state at start": text(
                before.get("thermal_pressure", self.facts.get("thermal_pressure"))
            ),
            "contention": ", ".join(str(c) for c in contended)
            if isinstance(contended, list) and contended
            else None,
        }


@dataclass(frozen=True)
class NodeInfo:
    name: str
    tier: str | None = None
    hourly_usd: float | None = None
    purchase_usd: float | None = None
    kwh_usd: float | None = None


@dataclass(frozen=True)
class RunEvidence:
    run: RunRecord
    cells: tuple[CellEvidence, ...]
    facts: Mapping[str, Mapping[str, Any]]
    """node -> facts at the start of the run."""
    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)

    @property
    def run_id(self) -> int:
        return self.run.id

    def budgets(self) -> dict[tuple[str, str], float]:
        """(workload, bucket) -> p95 budget in ms, from the stored spec."""
        budgets: dict[tuple[str, str], float] = {}
        for workload in self.run.spec.get("workloads", []):
            for bucket in workload.get("buckets", []):
                if isinstance(bucket.get("budget_ms"), int | float):
                    budgets[(workload["name"], bucket["name"])] = float(bucket["budget_ms"])
        return budgets


def loops_of(summary: Mapping[str, Any] | None) -> int:
    """Calls per stored sample (the summary's `loops`; 1 when absent or not a positive integer)."""
    loops = summary.get("loops") if summary else None
    return loops if isinstance(loops, int) and not isinstance(loops, bool) and loops >= 1 else 1


def phase_runs(store: Store, cell_id: int, phase: str, loops: int = 1) -> PhaseRuns:
    """Per-run per-call statistics from the raw samples (ns of `loops` calls each) of the cell's
    current attempt."""
    by_run: dict[int, list[int]] = {}
    for batch in store.sample_batches(cell_id, phase=phase):
        by_run.setdefault(batch.run_idx, []).extend(batch.ns)
    order = sorted(r for r, v in by_run.items() if v)
    if not order:
        return PhaseRuns()
    ns, p50, p95, mean = [], [], [], []
    pooled: list[float] = []
    for run in order:
        values = sorted(x / loops for x in by_run[run]) if loops != 1 else sorted(map(float, by_run[run]))
        ns.append(len(values))
        p50.append(float(nearest_rank(values, 0.5)))
        p95.append(float(nearest_rank(values, 0.95)))
        mean.append(math.fsum(values) / len(values))
        pooled.extend(values)
    pooled.sort()
    return PhaseRuns(tuple(order), tuple(ns), tuple(p50), tuple(p95), tuple(mean), tuple(pooled))


def comparability_key(
    cell: CellRow,
    summary: Mapping[str, Any] | None,
    run: RunRecord,
    facts: Mapping[str, Any],
) -> tuple[tuple[str, str], ...]:
    """Workload, bucket, engine config, artifact id, the engine's library versions and Python,
    measurement mode and the settings that change what is measured. Cells compare only when
    their keys are equal."""
    artifacts = run.versions.get("artifacts") if isinstance(run.versions, Mapping) else None
    artifact = artifacts.get(cell.workload) if isinstance(artifacts, Mapping) else None
    raw_libs = facts.get("libs")
    libs: Mapping[str, Any] = raw_libs if isinstance(raw_libs, Mapping) else {}
    measure = run.spec.get("measure", {}) if isinstance(run.spec, Mapping) else {}
    items: list[tuple[str, str]] = [
        ("workload", cell.workload),
        ("bucket", cell.bucket),
        ("engine", cell.engine),
        *sorted((f"config.{k}", str(v)) for k, v in cell.config.items()),
        ("artifact", str(artifact)),
        ("python", str(facts.get("python"))),
        *((f"lib.{name}", str(libs.get(name))) for name in ENGINE_LIBRARIES.get(cell.engine, ())),
        ("mode", str(summary.get("mode")) if summary else "None"),
        *((f"measure.{name}", str(measure.get(name))) for name in SETTINGS_IN_KEY),
        # A power reader running beside the model is a condition of the measurement: latencies
        # measured with and without one are not compared.
        ("power_reader", str(summary.get("power_reader") or "none") if summary else "none"),
    ]
    return tuple(items)


ENGINE_KEY_FIELDS: tuple[str, ...] = ("engine", "config.", "lib.mlx", "lib.coremltools")
"""Key fields that name the engine itself: ignored when two engines are compared on purpose
(Core ML against MLX on the same node)."""


def key_difference(
    a: Sequence[tuple[str, str]], b: Sequence[tuple[str, str]], ignore: Sequence[str] = ()
) -> list[str]:
    """What differs between two keys, as "name a vs b" strings (empty when comparable).
    Fields starting with any prefix in `ignore` are left out."""
    da, db = dict(a), dict(b)
    names = [k for k in sorted(set(da) | set(db)) if not any(k.startswith(p) for p in ignore)]
    return [f"{k} {da.get(k)} vs {db.get(k)}" for k in names if da.get(k) != db.get(k)]


def _cold_starts(summary: Mapping[str, Any] | None) -> tuple[float, ...]:
    if not summary or not isinstance(summary.get("per_run"), list):
        return ()
    values: list[float] = []
    for run in summary["per_run"]:
        cold = run.get("cold_start") if isinstance(run, Mapping) else None
        if not isinstance(cold, Mapping):
            continue
        parts = [cold.get(k) for k in ("load_ms", "compile_ms", "first_ms")]
        numbers = [float(p) for p in parts if isinstance(p, int | float) and not isinstance(p, bool)]
        if numbers and sum(numbers) > 0:
            values.append(sum(numbers))
    return tuple(values)


def load_run(store: Store, run_id: int, *, with_samples: bool = True) -> RunEvidence:
    """Everything about one run a comparison needs (StoreError for an unknown run)."""
    run = store.run(run_id)
    facts: dict[str, Mapping[str, Any]] = {}
    for probe in store.probes(run_id):
        if probe["phase"] == "start" or probe["node"] not in facts:
            facts[probe["node"]] = probe["facts"]
    cells = store.cells_for(run_id)
    missing = {c.node for c in cells} - set(facts)
    if missing:
        facts.update(store.latest_facts(missing))
    gates: dict[int, list[GateVerdict]] = {}
    for verdict in store.gate_verdicts(run_id):
        if verdict.cell_id is not None:
            gates.setdefault(verdict.cell_id, []).append(verdict)
    summaries = {o.cell_id: o.summary for o in store.outcomes(run_id)}
    evidence: list[CellEvidence] = []
    for cell in cells:
        summary = summaries.get(cell.id)
        node_facts = facts.get(cell.node, {})
        measured = cell.state == "done" and with_samples
        evidence.append(
            CellEvidence(
                run_id=run_id,
                cell=cell,
                summary=summary,
                measure=phase_runs(store, cell.id, "measure", loops_of(summary)) if measured else PhaseRuns(),
                sustained=phase_runs(store, cell.id, "sustained", loops_of(summary))
                if measured
                else PhaseRuns(),
                cold_start_ms=_cold_starts(summary),
                key=comparability_key(cell, summary, run, node_facts),
                facts=node_facts,
                gates=tuple(gates.get(cell.id, ())),
            )
        )
    nodes = {
        str(n["name"]): NodeInfo(
            name=str(n["name"]),
            tier=n.get("tier"),
            hourly_usd=n.get("hourly_usd"),
            purchase_usd=n.get("purchase_usd"),
            kwh_usd=n.get("kwh_usd"),
        )
        for n in store.nodes()
    }
    return RunEvidence(run=run, cells=tuple(evidence), facts=facts, nodes=nodes)
