"""Coverage, flag rates, drift-gate power and micro-op bias of node_agent.stats, with many replications.

Run: `.venv/bin/python tests/bench/bench_coverage.py [--reps N]` (default 1000; about 10 minutes on
a 2-core box). It runs the scenarios of tests/unit/test_stats_simulation.py (the fast, asserted
version) with more replications and prints the Markdown table of docs/MEASUREMENT.md. Seeded:
the same command prints the same table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from unit.test_stats_simulation import (  # noqa: E402
    ACCEPTANCE_PHASES,
    DISTS,
    SMOKE_PHASES,
    Tally,
    ar1_scenario,
    drift_gate_scenario,
    early_stop_scenario,
    iid_scenario,
    micro_op_scenario,
    multi_run_scenario,
)


def pct(tally: Tally) -> str:
    return f"{100 * tally.rate:.1f}%"


def row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="replications per scenario (default 1000)")
    reps = parser.parse_args().reps
    started = time.perf_counter()
    print(f"Replications per row: {reps} (fewer where marked). Coverage = 95% interval contains the truth.\n")
    row("scenario", "n", "p50 coverage", "p95 coverage", "no interval", "autocorrelated", "slow_initial")
    row(*["---"] * 7)
    for n in (130, 662, 2000):
        for i, dist in enumerate(DISTS):
            r = iid_scenario(dist, n, reps, seed=100 * n + i)
            row(
                f"i.i.d. {dist.name}",
                str(n),
                pct(r.coverage["p50"]),
                pct(r.coverage["p95"]),
                pct(r.no_interval),
                pct(r.flags["autocorrelated"]),
                pct(r.flags["slow_initial"]),
            )
    for n in (130, 662, 2000):
        r = ar1_scenario(0.5, n, reps, seed=7 + n)
        row(
            "AR(1) rho=0.5, lognormal s=0.1",
            str(n),
            pct(r.coverage["p50"]),
            pct(r.coverage["p95"]),
            pct(r.no_interval),
            pct(r.flags["autocorrelated"]),
            pct(r.flags["slow_initial"]),
        )
    print()
    row("multi-run (R=5, lognormal s=0.1)", "n per run", "p50 coverage", "p95 coverage", "need_more_runs")
    row(*["---"] * 5)
    multi_reps = max(50, reps // 2)
    for n in (662, 2000):
        for between in (0.0, 0.02, 0.05):
            r = multi_run_scenario(between, runs=5, n=n, reps=multi_reps, seed=int(1000 * between) + n)
            row(
                f"between-run sd {between:g} ({multi_reps} reps)",
                str(n),
                pct(r.coverage["p50"]),
                pct(r.coverage["p95"]),
                pct(r.flags["need_more_runs"]),
            )
    print()
    row("drift gate (limit 1.2x)", "sustained rise", "fail", "inconclusive", "pass")
    row(*["---"] * 5)
    drift_reps = max(50, reps // 4)
    for phases in (SMOKE_PHASES, ACCEPTANCE_PHASES):
        for rise in (0.0, 0.25):
            v = drift_gate_scenario(phases, rise, drift_reps, seed=21 + int(100 * rise))
            row(
                f"{phases.name} ({drift_reps} reps)",
                f"+{100 * rise:g}% linear",
                pct(v["fail"]),
                pct(v["inconclusive"]),
                pct(v["pass"]),
            )
    print()
    row(
        "micro-op (lognormal s=0.05 batch means)",
        "p95 bias (float division)",
        "p95 bias (elapsed // loops)",
        "p95 coverage",
    )
    row(*["---"] * 4)
    micro_reps = max(40, reps // 5)
    for per_call in (20.0, 200.0):
        m = micro_op_scenario(per_call, micro_reps, seed=31)
        row(
            f"{per_call:g} ns per call ({micro_reps} reps)",
            f"{100 * m['bias']:+.2f}%",
            f"{100 * m['old_bias']:+.2f}%",
            f"{100 * m['coverage']:.1f}%",
        )
    print()
    row("early stops (100 ms calls, 600-sample ceiling)", "stopped by", "runs", "p95 coverage")
    row(*["---"] * 4)
    for sigma in (0.05, 0.1):
        tallies = early_stop_scenario(sigma, reps, seed=41)
        for reason, tally in sorted(tallies.items()):
            row(f"lognormal s={sigma:g}", reason, str(tally.total), pct(tally))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
