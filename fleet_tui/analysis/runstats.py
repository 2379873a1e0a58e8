"""Run-level comparison statistics: the run, not the sample, is the unit of replication.

Given one statistic per run (a run's p50, p95, cold start ...) for a cell and for its reference:

- **Welch t-test on the logs**: d = mean(log b) - mean(log a), se = sqrt(var_a/n_a + var_b/n_b),
  Welch-Satterthwaite degrees of freedom; the ratio b/a is exp(d) with the interval
  exp(d +- t(0.975, df) * se).
- **Verdict**: faster / slower only when the interval excludes 1 AND the change is at least the
  minimum effect (|ratio - 1| >= min_effect); otherwise no significant difference.
- **Runs needed**: from the pooled between-run spread s of the logs, the smallest R per side with
  (t(0.975, 2R-2) + t(0.80, 2R-2)) * s * sqrt(2 / R) <= log(1 + min_effect) (80% power).
- **Second opinion**: the Hodges-Lehmann shift of the logs (median of all pairwise differences)
  with an exact Mann-Whitney test on the run statistics.

docs/MEASUREMENT.md ("Comparing runs and nodes") gives the simulation figures behind these
choices. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from fleet_tui.analysis.tables import Verdict
from node_agent.tdist import t_ppf, t_sf

ALPHA = 0.05
POWER = 0.80
MAX_RUNS_NEEDED = 10_000
EXACT_MW_MAX_PAIRS = 900
"""Exact Mann-Whitney up to 30 x 30 runs; beyond, the normal approximation."""


@dataclass(frozen=True)
class WelchResult:
    ratio: float
    low: float
    high: float
    p_value: float
    df: float
    se: float
    """Standard error of the log ratio."""


@dataclass(frozen=True)
class RunComparison:
    """Every figure of one run-level comparison of b (this) against a (reference)."""

    welch: WelchResult | None
    verdict: Verdict
    runs_needed: int | None
    resolvable_effect: float | None
    hl_ratio: float | None
    mw_p: float | None
    robust_verdict: Verdict
    reason: str | None = None

    @property
    def methods_disagree(self) -> bool:
        decided = ("faster", "slower")
        return (self.verdict in decided or self.robust_verdict in decided) and (
            self.robust_verdict != "insufficient" and self.verdict != self.robust_verdict
        )


def _logs(values: Sequence[float]) -> list[float]:
    return [math.log(v) for v in values if v > 0 and math.isfinite(v)]


def welch_log_ratio(a: Sequence[float], b: Sequence[float], conf: float = 1 - ALPHA) -> WelchResult | None:
    """Welch's interval of the ratio b / a on the log scale; None with fewer than 2 values a side."""
    la, lb = _logs(a), _logs(b)
    if len(la) < 2 or len(lb) < 2:
        return None
    d = statistics.fmean(lb) - statistics.fmean(la)
    va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    se = math.sqrt(va + vb)
    if se == 0.0:
        # Identical runs within each side: the ratio is exact, and significant when not 1.
        df = float(len(la) + len(lb) - 2)
        return WelchResult(math.exp(d), math.exp(d), math.exp(d), 0.0 if d != 0 else 1.0, df, 0.0)
    df = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1))
    t = t_ppf(1.0 - (1.0 - conf) / 2.0, df)
    p = min(1.0, 2.0 * t_sf(abs(d) / se, df))
    return WelchResult(math.exp(d), math.exp(d - t * se), math.exp(d + t * se), p, df, se)


def verdict_of(ratio: float, low: float, high: float, min_effect: float) -> Verdict:
    """faster / slower only when [low, high] excludes 1 and |ratio - 1| >= min_effect."""
    if high < 1.0 and 1.0 - ratio >= min_effect:
        return "faster"
    if low > 1.0 and ratio - 1.0 >= min_effect:
        return "slower"
    return "no_significant_difference"


def pooled_log_sd(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The pooled between-run standard deviation of the logs (None below 3 values in all)."""
    la, lb = _logs(a), _logs(b)
    dof = len(la) + len(lb) - 2
    if dof < 1:
        return None
    ss = sum((x - statistics.fmean(la)) ** 2 for x in la) if la else 0.0
    ss += sum((x - statistics.fmean(lb)) ** 2 for x in lb) if lb else 0.0
    return math.sqrt(ss / dof)


def resolvable_effect(
    sd_log: float, n_a: int, n_b: int, conf: float = 1 - ALPHA, power: float = POWER
) -> float:
    """The smallest effect (fraction) resolved at `power` with n_a and n_b runs and spread sd_log."""
    df = max(1, n_a + n_b - 2)
    z = t_ppf(1.0 - (1.0 - conf) / 2.0, df) + t_ppf(power, df)
    return math.exp(z * sd_log * math.sqrt(1.0 / n_a + 1.0 / n_b)) - 1.0


def runs_needed(sd_log: float, min_effect: float, conf: float = 1 - ALPHA, power: float = POWER) -> int:
    """Runs per side to resolve `min_effect` at `power` (two-sided, equal runs per side)."""
    delta = math.log1p(min_effect)
    if sd_log <= 0.0:
        return 2

    def enough(runs: int) -> bool:
        df = 2 * runs - 2
        z = t_ppf(1.0 - (1.0 - conf) / 2.0, df) + t_ppf(power, df)
        return z * sd_log * math.sqrt(2.0 / runs) <= delta

    # t quantiles exceed normal ones, so the normal-approximation answer is a lower bound: step up.
    z = NormalDist().inv_cdf(1.0 - (1.0 - conf) / 2.0) + NormalDist().inv_cdf(power)
    runs = max(2, math.ceil(2.0 * (z * sd_log / delta) ** 2))
    while runs < MAX_RUNS_NEEDED and not enough(runs):
        runs += 1
    return min(runs, MAX_RUNS_NEEDED)


def hodges_lehmann_ratio(a: Sequence[float], b: Sequence[float]) -> float | None:
    """exp(median of all pairwise log b_j - log a_i): the robust estimate of the ratio b / a."""
    la, lb = _logs(a), _logs(b)
    if not la or not lb:
        return None
    return math.exp(statistics.median([y - x for x in la for y in lb]))


@lru_cache(maxsize=4096)
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of arrangements of m + n distinct values with U = u, for u = 0 .. m*n."""
    if m == 0 or n == 0:
        return (1,)
    counts = [0] * (m * n + 1)
    for u, c in enumerate(_u_counts(m - 1, n)):  # largest value in the first sample: adds n
        counts[u + n] += c
    for u, c in enumerate(_u_counts(m, n - 1)):  # largest value in the second sample: adds 0
        counts[u] += c
    return tuple(counts)


def min_mann_whitney_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided exact p-value n_a and n_b runs can give."""
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def mann_whitney_exact(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney p-value of b against a: exact (no-ties null) for small samples."""
    if not a or not b:
        return None
    u = sum(1.0 if y > x else 0.5 if y == x else 0.0 for x in a for y in b)
    m, n = len(b), len(a)
    if m * n > EXACT_MW_MAX_PAIRS:
        from node_agent.stats import mann_whitney_u

        return mann_whitney_u(list(a), list(b))[1]
    # u counts pairs with b above a, i.e. U of the b sample: the arrangements table of (m, n).
    counts = _u_counts(m, n)
    total = math.comb(m + n, m)
    low = sum(counts[: math.floor(u) + 1]) / total
    high = sum(counts[math.ceil(u) :]) / total
    return min(1.0, 2.0 * min(low, high))


def compare_run_values(
    reference: Sequence[float], this: Sequence[float], min_effect: float, conf: float = 1 - ALPHA
) -> RunComparison:
    """The full comparison of `this` against `reference` (one value per run each)."""
    welch = welch_log_ratio(reference, this, conf)
    hl = hodges_lehmann_ratio(reference, this)
    n_a, n_b = len(_logs(reference)), len(_logs(this))
    if welch is None:
        return RunComparison(
            welch=None,
            verdict="insufficient",
            runs_needed=None,
            resolvable_effect=None,
            hl_ratio=hl,
            mw_p=None,
            robust_verdict="insufficient",
            reason=f"needs at least 2 runs a side (has {n_b} vs {n_a})",
        )
    verdict = verdict_of(welch.ratio, welch.low, welch.high, min_effect)
    sd = pooled_log_sd(reference, this) or 0.0
    resolvable = resolvable_effect(sd, n_a, n_b, conf)
    needed = None
    if verdict == "no_significant_difference" and resolvable > min_effect:
        needed = runs_needed(sd, min_effect, conf)
    mw_p = mann_whitney_exact(reference, this)
    robust: Verdict = "insufficient"
    if mw_p is not None and hl is not None and min_mann_whitney_p(n_a, n_b) < 1 - conf:
        robust = "no_significant_difference"
        if mw_p < 1 - conf and abs(hl - 1.0) >= min_effect:
            robust = "faster" if hl < 1.0 else "slower"
    return RunComparison(
        welch=welch,
        verdict=verdict,
        runs_needed=needed,
        resolvable_effect=resolvable,
        hl_ratio=hl,
        mw_p=mw_p,
        robust_verdict=robust,
    )
