"""A fixed stored run for the export and bundle tests: a real SQLite store written through the
Store's public methods, with samples drawn from a seeded RNG and summaries made the way the
agent makes them (node_agent.stats.cell_figures over the pooled raw runs, per-run nearest-rank
p50/p95 of elapsed / loops, node_agent.measure.drift_of over the sustained run), gates by the
sweep's own finish_run.

Three nodes (M1, M2 Pro, M4 tiers), one workload (mlp, buckets b1 and b8), numpy / MLX / Core ML
engine configs, R runs per cell, a sustained phase in the last run with thermal readings. The
numpy b1 cells are micro-op cells (MICRO_LOOPS calls per stored sample), so every reader must
divide the raw elapsed times by the summary's `loops`.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from spec_fixtures import spec_toml

from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import parse_spec
from fleet_tui.store import Store
from fleet_tui.sweep.plan import build_plan
from fleet_tui.sweep.scheduler import finish_run
from node_agent import measure, stats

SPEC = spec_toml(
    "fixture",
    description="export and bundle fixture",
    workloads=(("mlp", (("b1", 2.0), ("b8", 3.0))),),
    engines="\n".join(
        (
            'numpy = [{ dtype = "fp64" }]',
            'mlx = [{ device = "gpu", dtype = "fp16" }]',
            'coreml = [{ compute_units = "all", precision = "fp16" }]',
        )
    ),
    sections={"measure": "runs = 3\nsustained_minutes = 0.1"},
)

NODES = (
    Node(name="m1-a", host="127.0.0.2", tier="M1", hourly_usd=0.5, purchase_usd=700.0, tags=("m1",)),
    Node(name="m2pro-a", host="127.0.0.3", tier="M2 Pro", hourly_usd=0.9, purchase_usd=1500.0),
    Node(name="m4-a", host="127.0.0.4", tier="M4", hourly_usd=1.2, purchase_usd=1800.0),
)
CHIPS = {"m1-a": "Apple M1", "m2pro-a": "Apple M2 Pro", "m4-a": "Apple M4"}
SPEED = {"m1-a": 1.0, "m2pro-a": 0.8, "m4-a": 0.6}
"""Node speed factor on the latency (M4 fastest)."""
ENGINE_MS = {"numpy": 1.6, "mlx": 0.9, "coreml": 0.7}
BUCKET_FACTOR = {"b1": 1.0, "b8": 1.7}
BATCH = 1000
MICRO_LOOPS = 4
"""Calls per sample of the micro-op (numpy b1) cells."""
"""Samples per stored batch, as the agent flushes them."""


@dataclass(frozen=True)
class Fixture:
    store: Store
    run_id: int
    samples: int


def facts(node: str) -> dict[str, Any]:
    return {
        "os": "macos",
        "os_version": "15.3",
        "os_build": "24D60",
        "chip": CHIPS[node],
        "hw_model": "Mac14,3",
        "cores_total": 8,
        "memory_bytes": 16 << 30,
        "versions": {"python": "3.11.7", "numpy": "2.1.0", "mlx": "0.32.4", "coremltools": "9.0"},
    }


def _lognormal_ns(rng: np.random.Generator, median_ms: float, n: int, sigma: float = 0.08) -> list[int]:
    return [int(x) for x in np.exp(rng.normal(np.log(median_ms * 1e6), sigma, n))]


def _times(ns: list[int], start: int, gap: int = 20_000) -> list[int]:
    out, t = [], start
    for x in ns:
        out.append(t)
        t += x + gap
    return out


def _add(store: Store, cell_id: int, run: int, phase: str, ns: list[int], t_ns: list[int]) -> None:
    for i in range(0, len(ns), BATCH):
        store.add_samples(cell_id, run, phase, ns[i : i + BATCH], t_ns[i : i + BATCH])


def build(
    path: Path,
    *,
    samples_per_run: int = 150,
    sustained_samples: int = 400,
    runs: int = 3,
    seed: int = 20261202,
    nodes: tuple[Node, ...] = NODES,
) -> Fixture:
    """Build the fixture store at `path` (must not exist). Deterministic for a given seed,
    except the store's own timestamps (started_at etc.), which renderers must not print."""
    rng = np.random.default_rng(seed)
    spec = parse_spec(SPEC.replace("runs = 3", f"runs = {runs}"), source="fixture.toml")
    store = Store.open(path)
    store.upsert_nodes(nodes)
    artifact_id = "a" * 16
    store.add_artifact(artifact_id, "mlp", {"workload": "mlp", "artifact_id": artifact_id, "files": {}})
    run_id = store.create_run(
        spec, versions={"fleet_tui": "0.1.0", "agent_sha256": "b" * 64, "artifacts": {"mlp": artifact_id}}
    )
    for node in nodes:
        store.add_probe(
            node.name, facts(node.name), phase="start", run_id=run_id, taken_at="2026-01-01T00:00:00+00:00"
        )
    plan = build_plan(spec, list(nodes))
    cell_ids = store.add_cells(run_id, plan.cells)
    total = 0
    for cell, cell_id in zip(plan.cells, cell_ids, strict=True):
        store.mark_cell(cell_id, "running", attempt_inc=True)
        median = ENGINE_MS[cell.engine] * BUCKET_FACTOR[cell.bucket] * SPEED[cell.node]
        micro = cell.engine == "numpy" and cell.bucket == "b1"
        mode, loops = ("micro", MICRO_LOOPS) if micro else ("latency", 1)
        pooled: list[int] = []
        run_ids: list[int] = []
        per_run: list[dict[str, Any]] = []
        drift: dict[str, Any] | None = None
        for r in range(runs):
            run_median = median * float(np.exp(rng.normal(0.0, 0.003)))
            warmup = _lognormal_ns(rng, run_median * 1.3 * loops, 10)
            measured = _lognormal_ns(rng, run_median * loops, samples_per_run)
            t_w = _times(warmup, 0)
            t_m = _times(measured, t_w[-1] + warmup[-1] + 20_000)
            _add(store, cell_id, r, "warmup", warmup, t_w)
            _add(store, cell_id, r, "measure", measured, t_m)
            total += len(warmup) + len(measured)
            sustained: list[int] = []
            t_s: list[int] = []
            if r == runs - 1 and sustained_samples:
                # The M4 heats up: its sustained latency creeps up and its thermal state goes fair.
                creep = 1.12 if cell.node == "m4-a" else 1.0
                base = _lognormal_ns(rng, run_median * loops, sustained_samples)
                sustained = [int(x * (1 + (creep - 1) * i / sustained_samples)) for i, x in enumerate(base)]
                t_s = _times(sustained, t_m[-1] + measured[-1] + 20_000)
                _add(store, cell_id, r, "sustained", sustained, t_s)
                total += len(sustained)
                span = t_s[-1] - t_s[0]
                for k in range(6):
                    state = "fair" if cell.node == "m4-a" and k >= 3 else "nominal"
                    store.add_thermal(
                        run_id, cell.node, t_s[0] + span * k // 5, {"thermal_pressure": state}, cell_id
                    )
                record = measure.RunRecord(
                    mode=mode,
                    loops=loops,
                    measured=measure.per_call(array("q", measured), loops),
                    measured_elapsed=array("q", measured),
                    measured_t_ns=array("q", t_m),
                    sustained=measure.per_call(array("q", sustained), loops),
                    sustained_elapsed=array("q", sustained),
                    sustained_t_ns=array("q", t_s),
                )
                drift = measure.drift_of(record)
            pooled += measured
            run_ids += [r] * len(measured)
            ordered = sorted(measure.per_call(array("q", measured), loops))
            per_run.append(
                {
                    "run": r,
                    "pid": 1000 + r,
                    "n": len(measured),
                    "n_warmup": len(warmup),
                    "warmup_converged": True,
                    "p50": stats.nearest_rank(ordered, 0.5),
                    "p95": stats.nearest_rank(ordered, 0.95),
                    "duration_s": sum(measured) / 1e9,
                    "stop_reason": "converged",
                    "cold_start": {"load_ms": 40.0 + 5 * r, "compile_ms": 120.0, "first_ms": 3.0},
                    "first_load_on_host": r == 0,
                    "memory_peak_bytes": 50_000_000,
                    "loops": loops,
                    "sustained_n": len(sustained),
                    "drift": drift if r == runs - 1 else None,
                    "conditions": {"before": {"thermal_pressure": "nominal"}, "after": {}},
                }
            )
        summary = stats.cell_figures(
            pooled,
            run_ids,
            per_run,
            mode=mode,
            loops=loops,
            clock_resolution_ns=1,
            want_p99=spec.measure.p99,
            epsilon=spec.measure.epsilon,
        )
        summary.update(
            inner_loops=1,
            cold_start={**per_run[0]["cold_start"], "first_load_on_host": True},
            numeric=None
            if cell.engine == "numpy"
            else {
                "ok": True,
                "max_abs": 1e-3,
                "max_rel": 2e-3,
                "cosine": 0.99999,
                "tolerance": {"max_rel": 1e-2},
            },
            clock={"name": "perf_counter_ns", "resolution_ns": 1},
            compute_plan=None
            if cell.engine != "coreml"
            else {
                "status": "ok",
                "compute_units": "all",
                "n_ops": 12,
                "op_count": {"ane": 9, "gpu": 0, "cpu": 3},
                "op_count_unplaced": 0,
                "cost_share": {"ane": 0.8, "gpu": 0.0, "cpu": 0.2},
                "cost_total": 1.0,
                "n_fallback": 1,
                "fallback_ops": [],
            },
            conditions={"before": {"thermal_pressure": "nominal", "power_source": "ac"}, "after": {}},
            flags=sorted(summary["flags"]),
        )
        store.add_result(cell_id, summary, "ok")
    for node in nodes:
        store.add_probe(
            node.name, facts(node.name), phase="end", run_id=run_id, taken_at="2026-01-01T01:00:00+00:00"
        )
    finish_run(store, run_id, spec, interrupted=False)
    return Fixture(store, run_id, total)
