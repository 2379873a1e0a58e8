"""The seeded simulation behind the comparison statistics (shared by the unit tests and
tests/bench/sim_compare.py, which prints the figures quoted in docs/MEASUREMENT.md).

Model: a node's run r has a log-median mu + b_r with b_r ~ N(0, sb) (between-run spread); its n
samples are lognormal with sigma 0.1 around it (within-run). Each run's p50 or p95 is the nearest-rank
order statistic of its samples, as evidence.py takes it from stored samples.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from fleet_tui.analysis.runstats import RunComparison, compare_run_values


@dataclass(frozen=True)
class SimResult:
    reps: int
    verdicts: Counter[str]
    robust: Counter[str]
    runs_needed: list[int]

    def rate(self, *verdicts: str) -> float:
        return sum(self.verdicts[v] for v in verdicts) / self.reps

    def rep_count_undecided(self) -> int:
        """Replications that ended in "no significant difference"."""
        return self.verdicts["no_significant_difference"]

    def robust_rate(self, *verdicts: str) -> float:
        return sum(self.robust[v] for v in verdicts) / self.reps


def per_run_stats(
    rng: np.random.Generator,
    reps: int,
    runs: int,
    n: int,
    sb: float,
    shift: float,
    q: float,
    sigma: float = 0.1,
) -> np.ndarray:
    """Per-run nearest-rank q-quantiles, shape (reps, runs), for a node whose true log-median is
    `shift`: the k-th of n lognormal samples drawn exactly as exp(b_r + sigma * Phi^-1(U_(k))),
    with U_(k) ~ Beta(k, n - k + 1) the k-th order statistic of n uniforms (same distribution
    as sorting n samples, at O(1) cost per run)."""
    k = int(np.ceil(q * n))
    run_effects = rng.normal(shift, sb, size=(reps, runs))
    u = rng.beta(k, n - k + 1, size=(reps, runs))
    values: np.ndarray = np.exp(run_effects + sigma * ndtri(u))
    return values


def simulate(
    *,
    sb: float,
    true_ratio: float = 1.0,
    runs: int = 5,
    n: int = 1000,
    reps: int = 1000,
    statistic: str = "p50",
    min_effect: float = 0.02,
    seed: int = 0,
    chunk: int = 100,
) -> SimResult:
    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    robust: Counter[str] = Counter()
    needed: list[int] = []
    q = 0.5 if statistic == "p50" else 0.95
    done = 0
    while done < reps:
        size = min(chunk, reps - done)
        a = per_run_stats(rng, size, runs, n, sb, 0.0, q)
        b = per_run_stats(rng, size, runs, n, sb, float(np.log(true_ratio)), q)
        for i in range(size):
            result: RunComparison = compare_run_values(a[i].tolist(), b[i].tolist(), min_effect)
            verdicts[result.verdict] += 1
            robust[result.robust_verdict] += 1
            if result.runs_needed is not None:
                needed.append(result.runs_needed)
        done += size
    return SimResult(reps, verdicts, robust, needed)
