"""Simulation figures of the comparison statistics (quoted in docs/MEASUREMENT.md).

    .venv/bin/python tests/bench/sim_compare.py [--reps 20000]

For each between-run spread sb and run count R (n = 1000 samples per run, within-run lognormal
sigma 0.1): the rate of "faster"/"slower" verdicts on identical nodes (Welch, and the
Hodges-Lehmann / Mann-Whitney second opinion), the detection rate of a true 10% and 5% slow-down,
the median minimum resolvable effect at 80% power and the median "need N runs" for 2%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from compare_sim import per_run_stats, simulate  # noqa: E402

from fleet_tui.analysis.runstats import pooled_log_sd, resolvable_effect  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=20000)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"reps {args.reps} per line, n = 1000 per run, sigma 0.1, min effect 2%, seeded")
    print("stat  sb    R   FP welch  FP robust  power 10%  power 5%  resolvable  need-for-2%")
    for stat in ("p50", "p95"):
        for sb in (0.02, 0.05):
            for runs in (3, 5, 9, 15):
                null = simulate(sb=sb, runs=runs, reps=args.reps, statistic=stat, seed=1)
                p10 = simulate(sb=sb, runs=runs, reps=args.reps // 4, true_ratio=1.10, statistic=stat, seed=2)
                p5 = simulate(sb=sb, runs=runs, reps=args.reps // 4, true_ratio=1.05, statistic=stat, seed=3)
                rng = np.random.default_rng(4)
                q = 0.5 if stat == "p50" else 0.95
                a = per_run_stats(rng, 2000, runs, 1000, sb, 0.0, q)
                b = per_run_stats(rng, 2000, runs, 1000, sb, 0.0, q)
                resolvable = statistics.median(
                    resolvable_effect(pooled_log_sd(a[i], b[i]) or 0.0, runs, runs) for i in range(2000)
                )
                need = statistics.median(null.runs_needed) if null.runs_needed else None
                print(
                    f"{stat}  {sb:.2f}  {runs:<3d} {null.rate('faster', 'slower') * 100:6.2f}%  "
                    f"{null.robust_rate('faster', 'slower') * 100:8.2f}%  {p10.rate('slower') * 100:8.1f}%  "
                    f"{p5.rate('slower') * 100:7.1f}%  {resolvable * 100:9.1f}%  {need}"
                )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
