"""Expand a sweep spec over the target nodes into cells, with a duration estimate.

A cell = (node, workload, bucket, engine config). Nothing is dropped: a cell that is known
before running to be impossible on its node (Core ML prediction off macOS, MLX on the GPU
without Metal, an engine the node's probe reports missing) stays in the plan with state
"unsupported" and the reason (docs/DESIGN.md, "Engines and cells"). Without probe facts for a node,
every cell of it is "pending" and the agent reports unsupported cells when it meets them.

Cell keys are stable names within a node: ``workload/bucket/engine-key``, e.g.
``mlp/b1/mlx:cpu:fp32``; a cell id (unique within a run) is ``node/key``.

Duration estimate (an assumption, printed with the plan): every inference takes its bucket's
budget. Per cell::

    runs x (warmup + measure + cooldown) + sustained
    warmup  = max(min((warmup_min + 40) x latency, max_duration_s), warmup_min x latency)
              # 40 = the 2 x 20 stability check, passed first time; the agent caps warmup in time
    measure = clamp(min_samples x latency, min_duration_s, max_duration_s)

(The agent cools down after every run of every cell, so a cell pays cooldown_s `runs` times.)

A node runs its cells one after another; nodes run in parallel, so the sweep's wall time is the
slowest node's. Waiting for nominal thermal pressure (up to wait_nominal_s per cell), model
loads and uploads are not included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from fleet_tui.config.spec import EngineConfig, MeasureSpec, SpecError, SweepSpec
from fleet_tui.model.cells import PlannedCell, cell_key

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

STABILITY_CHECK_SAMPLES: Final = 40
"""Samples of the adaptive warmup check (2 x 20, docs/MEASUREMENT.md, "Warmup") assumed in the estimate."""

ESTIMATE_ASSUMPTION: Final = (
    "estimate assumes every inference takes its bucket's budget; excludes waits for nominal "
    "thermal pressure, model loads and uploads"
)


@dataclass(frozen=True)
class Plan:
    spec: SweepSpec
    nodes: tuple[str, ...]
    cells: tuple[PlannedCell, ...]

    def cells_for(self, node: str) -> list[PlannedCell]:
        return [c for c in self.cells if c.node == node]

    @property
    def runnable(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.state == "pending"]

    @property
    def unsupported(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.state == "unsupported"]

    def node_estimate_s(self, node: str) -> float:
        """Expected seconds for one node (its cells run one after another)."""
        return sum(c.estimate_s for c in self.cells_for(node))

    @property
    def wall_estimate_s(self) -> float:
        """Expected wall time of the sweep: the slowest node (nodes run in parallel)."""
        return max((self.node_estimate_s(n) for n in self.nodes), default=0.0)

    @property
    def node_seconds_estimate(self) -> float:
        """Sum of every node's expected seconds (what the fleet is busy for; rental cost)."""
        return sum(self.node_estimate_s(n) for n in self.nodes)

    def table(self) -> str:
        """The plan as a plain-text table (for `sweep --dry-run`)."""
        spec = self.spec
        lines = [
            f"sweep {spec.name!r}  contract {spec.contract_hash[:12]}  {len(self.nodes)} node(s), "
            f"{len(self.cells)} cell(s): {len(self.runnable)} to run, {len(self.unsupported)} unsupported",
            f"measure: runs={spec.measure.runs} min_samples={spec.measure.min_samples} "
            f"min_duration_s={spec.measure.min_duration_s:g} max_duration_s={spec.measure.max_duration_s:g} "
            f"sustained_minutes={spec.measure.sustained_minutes:g} cooldown_s={spec.measure.cooldown_s:g}",
            "",
        ]
        header = ("NODE", "CELL", "BUDGET", "STATE", "EST", "REASON")
        rows = [
            (
                c.node,
                c.key,
                f"{c.budget_ms:g} ms",
                c.state,
                format_duration(c.estimate_s) if c.state == "pending" else "-",
                c.reason or "",
            )
            for c in self.cells
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        for row in [header, *rows]:
            cells = [text.ljust(width) for text, width in zip(row[:-1], widths, strict=True)]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        lines.append("")
        for node in self.nodes:
            node_cells = self.cells_for(node)
            runnable = sum(1 for c in node_cells if c.state == "pending")
            estimate = format_duration(self.node_estimate_s(node))
            lines.append(f"{node}: {runnable}/{len(node_cells)} cell(s) to run, ~{estimate}")
        lines.append(
            f"total: ~{format_duration(self.wall_estimate_s)} wall (nodes in parallel), "
            f"~{format_duration(self.node_seconds_estimate)} node time"
        )
        lines.append(f"({ESTIMATE_ASSUMPTION})")
        return "\n".join(lines)


def build_plan(
    spec: SweepSpec,
    nodes: Sequence[Node],
    facts: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> Plan:
    """Expand spec x target nodes into cells (node, workload, bucket, engine config order).

    `nodes` is the inventory; the spec's targets select from it (SpecError on an unknown name
    or tag). `facts` maps node name -> probe facts (node_agent.facts.collect_facts); where
    given, cells the node cannot run are marked unsupported with the reason.
    """
    targets = spec.select_nodes(nodes)
    if not targets:
        raise SpecError(spec.source, "[targets]", "the targets select no node of the inventory")
    facts = facts or {}
    cells: list[PlannedCell] = []
    for node in targets:
        node_facts = facts.get(node.name)
        for workload in spec.workloads:
            for bucket in workload.buckets:
                for engine in spec.engines:
                    reason = (
                        workload_unsupported_reason(workload.name)
                        or node_workload_reason(workload.name, node_facts, node.python)
                        or unsupported_reason(engine, node_facts)
                    )
                    cells.append(
                        PlannedCell(
                            node=node.name,
                            workload=workload.name,
                            bucket=bucket.name,
                            engine=engine.engine,
                            config=engine.config,
                            key=cell_key(workload.name, bucket.name, engine.key),
                            budget_ms=bucket.budget_ms,
                            estimate_s=0.0
                            if reason
                            else estimate_cell_seconds(spec.measure, bucket.budget_ms),
                            state="unsupported" if reason else "pending",
                            reason=reason,
                        )
                    )
    return Plan(spec=spec, nodes=tuple(n.name for n in targets), cells=tuple(cells))


def workload_unsupported_reason(workload: str) -> str | None:
    """Why no node can run `workload` in this sweep: the controller builds every artifact with
    its own interpreter, so a package missing here (minilm-l6's weights) leaves the workload's
    cells unsupported, with the command that installs it; the rest of the sweep runs."""
    from node_agent.workloads import workload_missing_reason

    reason = workload_missing_reason(workload)
    return f"artifact cannot be built on the controller: {reason}" if reason else None


def node_workload_reason(workload: str, facts: Mapping[str, Any] | None, python: str) -> str | None:
    """Why a node cannot load `workload` although the controller built its artifact: the agent
    loads the workload's definition (minilm-l6: its weights package) with the node's own Python,
    and the probe lists the workloads it can load. None if it can, or if the facts do not say."""
    from node_agent.workloads import workload_install_command

    loadable = facts.get("workloads") if facts else None
    if not isinstance(loadable, list | tuple) or workload in loadable:
        return None
    fix = workload_install_command(workload, python)
    return f"the node's Python cannot load workload {workload}" + (
        f"; install it on the node with: {fix}" if fix else ""
    )


def unsupported_reason(engine: EngineConfig, facts: Mapping[str, Any] | None) -> str | None:
    """Why `engine` cannot run on a node with these probe facts; None if it can (or facts unknown)."""
    if not facts:
        return None
    engines = facts.get("engines")
    if isinstance(engines, Mapping):
        status = engines.get(engine.engine)
        if isinstance(status, str) and status != "available":
            return status
    elif isinstance(engines, list | tuple) and engine.engine not in engines:
        return f"engine {engine.engine} is not available on the node (it has: {', '.join(map(str, engines))})"
    os_name = facts.get("os")
    if not isinstance(os_name, str):
        return None
    if engine.engine == "coreml" and os_name != "macos":
        return f"Core ML prediction needs macOS (node runs {os_name})"
    if engine.engine == "mlx" and engine.config.get("device") == "gpu" and os_name != "macos":
        return f'MLX on the GPU needs Metal on macOS (node runs {os_name}); use device = "cpu"'
    return None


def estimate_cell_seconds(measure: MeasureSpec, latency_ms: float) -> float:
    """Expected seconds for one cell if every inference takes `latency_ms` (see module doc)."""
    latency_s = latency_ms / 1000.0
    # The agent ends an unconverged warmup after max_duration_s, once it has warmup_min samples.
    warmup = max(
        min((measure.warmup_min + STABILITY_CHECK_SAMPLES) * latency_s, measure.max_duration_s),
        measure.warmup_min * latency_s,
    )
    sampled = min(measure.max_duration_s, max(measure.min_duration_s, measure.min_samples * latency_s))
    idle = energy_idle_seconds(measure.energy, measure.energy_interval_ms)
    return measure.runs * (warmup + sampled + measure.cooldown_s + idle) + measure.sustained_minutes * 60.0


def energy_idle_seconds(choice: str, interval_ms: int) -> float:
    """The idle baseline the agent records before each run when energy is on (the shortest
    publishable window of the reader, plus its margin; `auto` is costed as a lumpy reader)."""
    if choice == "off":
        return 0.0
    from node_agent.energy.arithmetic import min_window_ns
    from node_agent.energy.base import IOREPORT_PUBLISH_CADENCE_MS
    from node_agent.energy.meter import IDLE_MARGIN

    cadence = interval_ms if choice == "powermetrics" else IOREPORT_PUBLISH_CADENCE_MS
    kind = "counter" if choice == "ioreport" else "power"
    return min_window_ns(interval_ms, cadence, kind) * IDLE_MARGIN / 1e9


def format_duration(seconds: float) -> str:
    """Compact human duration: "45s", "3m 05s", "2h 10m"."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
