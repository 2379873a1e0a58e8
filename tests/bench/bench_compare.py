"""`fleet-tui compare` over a big store: 100 runs, 5,000 result rows (50 cells a run).

Run:  .venv/bin/python tests/bench/bench_compare.py [--runs 100] [--samples 200]

Target (issue 9): under 1 s from the command to the printed table. Prints the time of the
`fleet-tui compare` subprocess (interpreter start-up included), of `compare` in-process (store
open, per-run statistics from the raw samples, table, text), and of `compare A B` (run vs run).
Each cell holds 5 runs x `--samples` raw samples.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fleet_tui.cli import main
from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import parse_spec
from fleet_tui.store import Store
from fleet_tui.sweep.plan import build_plan
from fleet_tui.sweep.scheduler import finish_run
from node_agent import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the shared spec writer
from spec_fixtures import spec_toml  # noqa: E402

SPEC = spec_toml(
    "bench",
    workloads=(("mlp", (("b1", 2.0), ("b8", 4.0), ("b32", 9.0))),),
    engines="\n".join(
        (
            'numpy = [{ dtype = "fp64" }, { dtype = "fp32" }]',
            'mlx = [{ device = "cpu", dtype = "fp32" }, { device = "gpu", dtype = "fp16" }]',
            'coreml = [{ compute_units = "all", precision = "fp16" },'
            ' { compute_units = "cpu_only", precision = "fp32" }]',
        )
    ),
    sections={"measure": "runs = 5\nsustained_minutes = 0"},
)
NODES = [
    Node(name=f"node{i}", host=f"127.0.0.{i + 2}", tier=f"M{i + 1}", hourly_usd=0.5 + i) for i in range(3)
]
RUNS_PER_CELL = 5


def build(path: Path, runs: int, samples: int) -> int:
    spec = parse_spec(SPEC, source="bench.toml")
    rng = random.Random(1)
    rows = 0
    with Store.open(path) as store:
        store.upsert_nodes(NODES)
        plan = build_plan(spec, NODES)
        cells = list(plan.cells)[:50]
        template = stats.summarize(
            [rng.lognormvariate(14, 0.1) for _ in range(1000)], run_ids=[i % 5 for i in range(1000)]
        )
        for _ in range(runs):
            run_id = store.create_run(spec, versions={"artifacts": {"mlp": "a" * 16}})
            for node in NODES:
                store.add_probe(
                    node.name,
                    {"chip": f"Apple {node.tier}", "python": "3.12", "libs": {}},
                    phase="start",
                    run_id=run_id,
                )
            ids = store.add_cells(run_id, cells)
            for cell_id in ids:
                store.mark_cell(cell_id, "running", attempt_inc=True)
                for r in range(RUNS_PER_CELL):
                    store.add_samples(
                        cell_id, r, "measure", [int(rng.lognormvariate(14, 0.1)) for _ in range(samples)]
                    )
                store.add_result(cell_id, template, "ok")
                rows += 1
            finish_run(store, run_id, spec, interrupted=False)
    return rows


def _in_process(args: list[str]) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.TextIOWrapper(io.BytesIO())) as out:
        code = main(args)
        out.flush()
    assert code in (0, 1), code
    return time.perf_counter() - started


def main_bench() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--samples", type=int, default=200, help="raw samples per run of a cell")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "store.db"
        started = time.perf_counter()
        rows = build(db, opts.runs, opts.samples)
        print(
            f"store: {opts.runs} runs, {rows} result rows, {rows * RUNS_PER_CELL * opts.samples} samples "
            f"(built in {time.perf_counter() - started:.1f} s, {db.stat().st_size / 1e6:.0f} MB)"
        )
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "fleet_tui", "compare", "--db", str(db)], capture_output=True
        )
        cli_s = time.perf_counter() - started
        assert proc.returncode == 0, proc.stderr.decode()
        print(
            f"fleet-tui compare (subprocess, latest run, {len(proc.stdout.splitlines())} lines): "
            f"{cli_s:.3f} s"
        )
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from node_agent.tdist import t_ppf; t_ppf(0.975, 4.0)"], check=True
        )
        tdist_s = time.perf_counter() - started
        print(f"  of which start-up of the t distribution (node_agent.tdist) alone: {tdist_s:.3f} s")
        times = sorted(_in_process(["compare", "--db", str(db)]) for _ in range(5))
        print(f"compare in-process: median {times[2]:.3f} s, min {times[0]:.3f} s")
        times = sorted(_in_process(["compare", "1", str(opts.runs), "--db", str(db)]) for _ in range(5))
        print(f"compare RUN_A RUN_B in-process: median {times[2]:.3f} s, min {times[0]:.3f} s")
        times = sorted(_in_process(["capex", "--db", str(db)]) for _ in range(5))
        print(f"capex in-process: median {times[2]:.3f} s")
        print(f"target: under 1 s to the printed table -> {'met' if cli_s < 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main_bench()
