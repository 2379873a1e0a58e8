"""A store built sample by sample for the comparison tests: every run of every cell gets exactly
the latencies the test asks for, so verdicts and costs can be computed by hand.

`cell_samples(node, key) -> list of per-run sample lists (ms)` decides the data; summaries are
the agent's own `stats.summarize` over the pooled samples with run ids (so its flags, such as
need_more_runs and few_samples_p95, are the real ones), plus whatever `extra` adds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import parse_spec
from fleet_tui.store import Store
from fleet_tui.sweep.plan import build_plan
from fleet_tui.sweep.scheduler import finish_run
from node_agent import stats

SPEC = """\
name = "compare-fixture"
[[workload]]
name = "mlp"
  [[workload.bucket]]
  name = "b1"
  budget_ms = {budget_b1}
  [[workload.bucket]]
  name = "b8"
  budget_ms = {budget_b8}
[engines]
{engines}
[measure]
runs = 5
sustained_minutes = 0
"""

ENGINES = 'numpy = [{ dtype = "fp64" }]'

Samples = Callable[[str, str], Sequence[Sequence[float]] | None]
"""(node, cell key) -> per-run samples in ms (None: leave the cell unsupported)."""


def lognormal_runs(
    rng: np.random.Generator,
    median_ms: float,
    runs: int = 5,
    n: int = 300,
    sb: float = 0.0005,
    sigma: float = 0.01,
) -> list[list[float]]:
    """`runs` runs of n lognormal samples around median_ms, with between-run spread sb."""
    return [
        list(np.exp(np.log(median_ms) + rng.normal(0.0, sb) + rng.normal(0.0, sigma, n))) for _ in range(runs)
    ]


def facts(node: str, chip: str = "Apple M2", **override: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "os": "macos",
        "os_version": "15.3",
        "os_build": "24D60",
        "chip": chip,
        "python": "3.12.3",
        "libs": {"numpy": "2.1.0", "mlx": "0.32.0", "coremltools": "9.0"},
        "power_source": "ac",
        "low_power_mode": False,
        "thermal_pressure": "nominal",
    }
    base.update(override)
    return base


def build(
    path: Path,
    nodes: Sequence[Node],
    samples: Samples,
    *,
    node_facts: Mapping[str, Mapping[str, Any]] | None = None,
    engines: str = ENGINES,
    budgets: tuple[float, float] = (10.0, 20.0),
    extra: Callable[[str, str], Mapping[str, Any]] | None = None,
    sustained: Samples | None = None,
    artifact: str = "a" * 16,
    store: Store | None = None,
) -> tuple[Store, int]:
    """Add one complete run to the store at `path` (created when `store` is None)."""
    spec = parse_spec(
        SPEC.format(budget_b1=budgets[0], budget_b8=budgets[1], engines=engines), source="fixture.toml"
    )
    store = store or Store.open(path)
    store.upsert_nodes(nodes)
    run_id = store.create_run(
        spec, versions={"fleet_tui": "0.1.0", "agent_sha256": "b" * 64, "artifacts": {"mlp": artifact}}
    )
    for node in nodes:
        store.add_probe(
            node.name, (node_facts or {}).get(node.name) or facts(node.name), phase="start", run_id=run_id
        )
    plan = build_plan(spec, list(nodes))
    cell_ids = store.add_cells(run_id, plan.cells)
    for cell, cell_id in zip(plan.cells, cell_ids, strict=True):
        runs = samples(cell.node, cell.key)
        if runs is None:
            store.add_result(cell_id, {}, "unsupported", reason="not on this node")
            continue
        store.mark_cell(cell_id, "running", attempt_inc=True)
        pooled: list[int] = []
        run_ids: list[int] = []
        per_run: list[dict[str, Any]] = []
        for r, values in enumerate(runs):
            ns = [int(v * 1e6) for v in values]
            store.add_samples(cell_id, r, "measure", ns)
            if sustained is not None:
                more = sustained(cell.node, cell.key)
                if more is not None:
                    store.add_samples(cell_id, r, "sustained", [int(v * 1e6) for v in more[r]])
            pooled += ns
            run_ids += [r] * len(ns)
            per_run.append({"run": r, "n": len(ns), "cold_start": {"load_ms": 40.0 + r, "first_ms": 2.0}})
        summary = stats.summarize(pooled, run_ids=run_ids, clock_resolution_ns=1)
        summary.update(mode="latency", per_run=per_run, conditions={"before": {"power_source": "ac"}})
        if extra is not None:
            for name, value in extra(cell.node, cell.key).items():
                if name == "flags":
                    summary["flags"] = sorted(set(summary["flags"]) | set(value))
                else:
                    summary[name] = value
        store.add_result(cell_id, summary, "ok")
    finish_run(store, run_id, spec, interrupted=False)
    return store, run_id
