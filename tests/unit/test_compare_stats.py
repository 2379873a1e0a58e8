"""The run-level comparison statistics: exact against scipy, and checked by seeded simulation
(R runs per node, n = 1000 samples per run, within-run lognormal sigma 0.1, between-run spread sb)."""

from __future__ import annotations

import math
import random

import pytest
from compare_sim import simulate
from scipy import stats as sps

from fleet_tui.analysis.compare import ratio_text
from fleet_tui.analysis.runstats import (
    compare_run_values,
    hodges_lehmann_ratio,
    mann_whitney_exact,
    min_mann_whitney_p,
    resolvable_effect,
    runs_needed,
    verdict_of,
    welch_log_ratio,
)
from fleet_tui.analysis.tables import Ratio


def _runs(rng: random.Random, count: int, median: float, sd: float) -> list[float]:
    return [median * math.exp(rng.gauss(0.0, sd)) for _ in range(count)]


@pytest.mark.parametrize("seed", range(6))
def test_welch_interval_and_p_match_scipy_on_logs(seed: int) -> None:
    rng = random.Random(seed)
    a, b = _runs(rng, 5, 10.0, 0.03), _runs(rng, 4 + seed % 3, 10.5, 0.06)
    result = welch_log_ratio(a, b)
    assert result is not None
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    reference = sps.ttest_ind(lb, la, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.df == pytest.approx(reference.df, rel=1e-9)
    low, high = reference.confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-9)
    assert result.ratio == pytest.approx(math.exp(sum(lb) / len(lb) - sum(la) / len(la)))


def test_welch_needs_two_runs_a_side_and_handles_identical_runs() -> None:
    assert welch_log_ratio([1.0], [1.0, 1.1]) is None
    exact = welch_log_ratio([2.0, 2.0, 2.0], [3.0, 3.0])
    assert exact is not None and exact.ratio == exact.low == exact.high == pytest.approx(1.5)
    assert exact.p_value == 0.0
    same = welch_log_ratio([2.0, 2.0], [2.0, 2.0])
    assert same is not None and same.p_value == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_exact_mann_whitney_matches_scipy(seed: int) -> None:
    rng = random.Random(seed)
    a, b = _runs(rng, 3 + seed, 10.0, 0.05), _runs(rng, 5, 10.4, 0.05)
    assert mann_whitney_exact(a, b) == pytest.approx(sps.mannwhitneyu(b, a, method="exact").pvalue, rel=1e-12)


def test_mann_whitney_resolution_and_hodges_lehmann() -> None:
    assert min_mann_whitney_p(3, 3) == pytest.approx(0.1)  # 3 vs 3 runs can never reach 5%
    assert min_mann_whitney_p(5, 5) == pytest.approx(2 / 252)
    # HL of the logs: pairwise log differences of {1, 2} vs {2, 4} are log 2, log 4, log 1, log 2.
    assert hodges_lehmann_ratio([1.0, 2.0], [2.0, 4.0]) == pytest.approx(2.0)


def test_verdict_needs_the_interval_to_exclude_one_and_the_minimum_effect() -> None:
    assert verdict_of(1.05, 1.01, 1.09, 0.02) == "slower"
    assert verdict_of(0.95, 0.91, 0.99, 0.02) == "faster"
    assert verdict_of(1.015, 1.01, 1.02, 0.02) == "no_significant_difference"  # excludes 1, too small
    assert verdict_of(1.10, 0.99, 1.22, 0.02) == "no_significant_difference"  # big, includes 1


def test_runs_needed_is_the_smallest_count_with_80_percent_power() -> None:
    for sd in (0.005, 0.02, 0.05):
        needed = runs_needed(sd, 0.02)
        assert resolvable_effect(sd, needed, needed) <= 0.02 + 1e-12
        if needed > 2:
            assert resolvable_effect(sd, needed - 1, needed - 1) > 0.02
    # Normal-approximation check by hand: 2 (1.96 + 0.84)^2 (0.02 / log 1.02)^2 = 15.99 -> t adds 2.
    assert runs_needed(0.02, 0.02) == 18


def test_single_runs_are_insufficient_and_say_why() -> None:
    result = compare_run_values([10.0], [12.0, 12.1], 0.02)
    assert result.verdict == "insufficient" and result.welch is None
    assert "at least 2 runs" in (result.reason or "")


def test_three_runs_cannot_give_a_robust_verdict() -> None:
    result = compare_run_values([10.0, 10.1, 9.9], [13.0, 13.2, 12.9], 0.02)
    assert result.verdict == "slower"
    assert result.robust_verdict == "insufficient"  # exact MW on 3 vs 3 cannot go below p = 0.1
    assert not result.methods_disagree


# --- seeded simulations -------------------------------------------------------------------------


@pytest.mark.parametrize("statistic", ["p50", "p95"])
@pytest.mark.parametrize("sb", [0.02, 0.05])
def test_identical_nodes_are_called_faster_or_slower_at_most_5_percent(sb: float, statistic: str) -> None:
    result = simulate(sb=sb, runs=5, n=1000, reps=3000, statistic=statistic, seed=0)
    assert result.rate("faster", "slower") <= 0.05, result.verdicts
    assert result.robust_rate("faster", "slower") <= 0.05, result.robust
    assert result.rate("insufficient") == 0


def test_a_10_percent_slowdown_is_detected_at_least_80_percent_at_sb_002_with_5_runs() -> None:
    result = simulate(sb=0.02, runs=5, n=1000, reps=1000, true_ratio=1.10, seed=1)
    assert result.rate("slower") >= 0.80, result.verdicts
    assert result.rate("faster") == 0


def test_too_few_runs_say_how_many_are_needed() -> None:
    # sb = 0.05 with 3 runs cannot resolve 2%: most comparisons say "need N runs".
    result = simulate(sb=0.05, runs=3, n=1000, reps=300, seed=2)
    assert len(result.runs_needed) >= 0.9 * result.rep_count_undecided()
    assert min(result.runs_needed) > 3
    one = compare_run_values([10.0, 10.6, 9.6], [10.2, 9.7, 10.4], 0.02)
    assert one.verdict == "no_significant_difference" and one.runs_needed is not None
    ratio = Ratio(
        metric="p50",
        reference="a",
        estimate=one.welch.ratio if one.welch else None,
        low=one.welch.low if one.welch else None,
        high=one.welch.high if one.welch else None,
        verdict=one.verdict,
        runs_needed=one.runs_needed,
    )
    assert f"need {one.runs_needed} runs to resolve 2%" in ratio_text(ratio)
