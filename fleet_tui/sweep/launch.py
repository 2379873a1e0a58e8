"""What every front end does around the scheduler: the dry-run's artifact estimate, the artifact
builds with a line before and after each, the versions stored with a run, and reading back an
interrupted run to resume it. `fleet-tui sweep` and the TUI both call these, so a sweep started
from either is the same sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet_tui.config.spec import SpecError, SweepSpec, parse_spec
from fleet_tui.sweep.artifacts import Artifact, build_artifact, build_estimate_s, coreml_precisions
from fleet_tui.sweep.events import Progress
from fleet_tui.sweep.plan import Plan, format_duration, workload_unsupported_reason
from fleet_tui.sweep.scheduler import _until_stopped

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node
    from fleet_tui.fleet.session import FleetConnections
    from fleet_tui.store import CellRow, Store
    from fleet_tui.store.records import RunRecord


def artifact_estimate_text(spec: SweepSpec, plan: Plan) -> str:
    """The plan's line on artifact builds: they run here before any node starts, so they add
    to the wall time (0 when cached; see artifacts.build_estimate_s)."""
    precisions = coreml_precisions(spec.engines)
    parts: list[str] = []
    total = 0.0
    for workload in spec.workloads:
        if workload_unsupported_reason(workload.name) is not None:
            continue  # never built: its cells are unsupported
        seconds = build_estimate_s(workload.name, precisions)
        total += seconds
        parts.append(f"{workload.name} {'cached' if seconds == 0 else '~' + format_duration(seconds)}")
    return (
        f"artifact builds (on this machine, before the nodes start): {', '.join(parts) or 'none'}; "
        f"with them: ~{format_duration(plan.wall_estimate_s + total)} wall"
    )


def buildable_workloads(spec: SweepSpec) -> list[str]:
    """The spec's workloads whose artifact can be built here (the others' cells are unsupported)."""
    return [w.name for w in spec.workloads if workload_unsupported_reason(w.name) is None]


async def build_artifacts(
    workloads: list[str], precisions: list[str], progress: Progress, stop: asyncio.Event
) -> dict[str, Artifact]:
    """Build (or reuse) each artifact in turn, with a line before and after each one: a cold
    build takes tens of seconds, which must not look like a hang. Interrupted if `stop` is set."""
    artifacts: dict[str, Artifact] = {}
    for index, workload in enumerate(workloads, 1):
        progress.emit(
            "artifact_build",
            message=f"artifact {workload} ({index}/{len(workloads)}): building or checking the cache",
            workload=workload,
        )
        artifact = await _until_stopped(stop, "building artifacts", build_artifact(workload, precisions))
        artifacts[workload] = artifact
        if artifact.reused:
            how = "cached"
        else:
            conversions = artifact.manifest.get("conversion_seconds") or {}
            detail = ", ".join(f"Core ML {p} {float(s):.1f} s" for p, s in sorted(conversions.items()))
            how = f"built in {artifact.build_s or 0:.1f} s" + (f" (conversion: {detail})" if detail else "")
        progress.emit(
            "artifact",
            message=f"artifact {workload} ({index}/{len(workloads)}): {artifact.artifact_id} {how}",
            workload=workload,
            artifact_id=artifact.artifact_id,
            reused=artifact.reused,
            build_s=artifact.build_s,
        )
    return artifacts


def sweep_versions(connections: FleetConnections, artifacts: dict[str, Artifact]) -> dict[str, Any]:
    """What the run records about the software that measured it."""
    from fleet_tui import __version__

    return {
        "fleet_tui": __version__,
        "agent_sha256": connections.bundle().sha256,
        "artifacts": {a.workload: a.artifact_id for a in artifacts.values()},
    }


class ResumeError(ValueError):
    """A stored run cannot be resumed with this inventory (the message says why)."""


@dataclass(frozen=True)
class Resumable:
    """A stored run read back for `--resume`: its own spec, what is left, and where it runs."""

    record: RunRecord
    spec: SweepSpec
    unfinished: list[CellRow]
    targets: list[Node]


def read_resumable(store: Store, run_id: int, inventory: Sequence[Node]) -> Resumable:
    """Run `run_id` with the spec stored with it and its unfinished cells. StoreError for an
    unknown run, SpecError for a stored spec that no longer parses, ResumeError for a node of the
    run missing from the inventory."""
    record = store.run(run_id)
    spec = parse_spec(record.spec_toml, source=f"{record.spec.get('source', 'spec')} (run {run_id})")
    unfinished = store.unfinished_cells(run_id, spec.scheduler.max_attempts)
    known = {n.name for n in inventory}
    missing = sorted({c.node for c in unfinished} - known)
    if missing:
        raise ResumeError(
            f"--resume {run_id}: node(s) {', '.join(missing)} of the run are not in the inventory"
        )
    wanted = {c.node for c in unfinished}
    return Resumable(record, spec, unfinished, [n for n in inventory if n.name in wanted])


__all__ = [
    "ResumeError",
    "Resumable",
    "SpecError",
    "artifact_estimate_text",
    "build_artifacts",
    "buildable_workloads",
    "read_resumable",
    "sweep_versions",
]
