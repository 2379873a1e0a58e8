"""node_agent.stats against independent oracles: scipy (dev venv only), brute force and MLPerf vectors."""

from __future__ import annotations

import json
import math
import random
import statistics
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from node_agent import stats, tdist

# --- MLPerf LoadGen early stopping ------------------------------------------------------------


@pytest.mark.parametrize(("p", "min_queries", "h0"), [(0.90, 64, 44), (0.95, 130, 90), (0.99, 662, 459)])
def test_early_stopping_regression_vectors(p: float, min_queries: int, h0: int) -> None:
    assert stats.early_stopping_min_queries(p) == min_queries
    assert stats.es_min_passing(0, p) == h0


def test_floors_are_the_early_stopping_minimums() -> None:
    assert stats.early_stopping_min_queries(0.95) == stats.MIN_SAMPLES_P95
    assert stats.early_stopping_min_queries(0.99) == stats.MIN_SAMPLES_P99
    assert stats.MIN_SAMPLES_P50 == 20


def test_early_stopping_ranks_at_1024() -> None:
    assert stats.early_stopping_rank(1024, 0.90) == 945
    assert stats.early_stopping_rank(1024, 0.95) == 990
    # The classical one-sided 99% upper bound (binom.ppf(0.99, n, p) + 1) is one rank lower.
    assert int(sps.binom.ppf(0.99, 1024, 0.90)) + 1 == 944
    assert int(sps.binom.ppf(0.99, 1024, 0.95)) + 1 == 989
    values = list(range(1, 1025))  # value == 1-based rank
    assert stats.early_stopping_estimate(values, 0.90) == 945
    assert stats.early_stopping_estimate(values, 0.95) == 990


@pytest.mark.parametrize("p", [0.90, 0.95, 0.99])
def test_es_min_passing_matches_scipy_definition(p: float) -> None:
    for t in [0, 1, 2, 3, 7, 20, 55]:
        h = stats.es_min_passing(t, p)
        assert sps.binom.cdf(t, h + t, 1 - p) <= 0.01
        assert sps.binom.cdf(t, h - 1 + t, 1 - p) > 0.01


@pytest.mark.parametrize("p", [0.90, 0.99])
def test_early_stopping_t_matches_loadgen_linear_scan(p: float) -> None:
    def brute(n: int) -> int:
        t = 0
        while n >= stats.es_min_passing(t + 1, p) + t + 1:
            t += 1
        return t

    for n in [*range(40, 700, 23), 661, 662, 663, 1024, 2500, 5001]:
        assert stats.early_stopping_t(n, p) == brute(n), n


def test_early_stopping_estimate_none_below_minimum() -> None:
    assert stats.early_stopping_estimate(list(range(63)), 0.90) is None
    assert stats.early_stopping_estimate(list(range(64)), 0.90) == 63  # t = 1: the max


# --- binomial -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 7, 20, 130, 1000, 10_000, 100_000])
@pytest.mark.parametrize("p", [0.01, 0.05, 0.1, 0.5, 0.9, 0.95, 0.99])
def test_binom_cdf_matches_scipy(n: int, p: float) -> None:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    ks = {
        0,
        1,
        n - 1,
        n,
        int(mean),
        int(mean - 3 * sd),
        int(mean + 3 * sd),
        int(mean - 8 * sd),
        int(mean + sd),
    }
    for k in sorted(k for k in ks if 0 <= k <= n):
        expected = float(sps.binom.cdf(k, n, p))
        assert stats.binom_cdf(k, n, p) == pytest.approx(expected, rel=1e-9, abs=1e-15), (k, n, p)


def test_binom_cdf_edges() -> None:
    assert stats.binom_cdf(-1, 10, 0.3) == 0.0
    assert stats.binom_cdf(10, 10, 0.3) == 1.0
    assert stats.binom_cdf(0, 10, 0.0) == 1.0
    assert stats.binom_cdf(9, 10, 1.0) == 0.0
    with pytest.raises(ValueError, match="p must be"):
        stats.binom_cdf(1, 10, 1.5)


@pytest.mark.parametrize("n", [1, 5, 72, 368, 1000, 99_999])
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.95, 0.99])
def test_binom_ppf_matches_scipy(n: int, p: float) -> None:
    for q in [0.001, 0.005, 0.01, 0.025, 0.05, 0.3, 0.5, 0.975, 0.99, 0.995, 1.0]:
        assert stats.binom_ppf(q, n, p) == int(sps.binom.ppf(q, n, p)), (q, n, p)


# --- quantile CIs ---------------------------------------------------------------------------


def _scipy_ranks(n: int, q: float, conf: float) -> tuple[int, int] | None:
    alpha = 1 - conf
    lower = int(sps.binom.ppf(alpha / 2, n, q))
    upper = int(sps.binom.ppf(1 - alpha / 2, n, q)) + 1
    return (lower, upper) if lower >= 1 and upper <= n else None


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("conf", [0.95, 0.99])
def test_quantile_ci_ranks_match_scipy_and_cover(q: float, conf: float) -> None:
    for n in [*range(1, 400), *range(400, 3000, 37), 10_000, 54_321]:
        ranks = stats.quantile_ci_ranks(n, q, conf)
        assert ranks == _scipy_ranks(n, q, conf), (n, q, conf)
        if ranks is not None:
            lower, upper = ranks
            # Exact coverage P(l <= B <= u-1), B ~ Bin(n, q), computed by scipy.
            coverage = sps.binom.cdf(upper - 1, n, q) - sps.binom.cdf(lower - 1, n, q)
            assert coverage >= conf
            assert stats.quantile_ci_coverage(n, q, lower, upper) == pytest.approx(coverage, abs=1e-12)


def _first_n(q: float, conf: float) -> int:
    return next(n for n in range(1, 2000) if stats.quantile_ci_ranks(n, q, conf) is not None)


def test_first_n_with_a_two_sided_ci_matches_measurement() -> None:
    assert _first_n(0.95, 0.95) == 72
    assert _first_n(0.99, 0.95) == 368
    assert _first_n(0.50, 0.95) == 6
    # Closed form for the upper rank: 1 - q^n >= 1 - alpha/2.
    assert math.ceil(math.log(0.025) / math.log(0.95)) == 72
    assert math.ceil(math.log(0.025) / math.log(0.99)) == 368


def test_first_n_with_a_one_sided_upper_bound_matches_measurement() -> None:
    def first(q: float) -> int:
        return next(n for n in range(1, 2000) if stats.binom_ppf(0.95, n, q) + 1 <= n)

    assert first(0.95) == 59
    assert first(0.99) == 299


def test_quantile_ci_coverage_on_lognormal_simulation() -> None:
    rng = random.Random(20240601)
    mu, sigma, n, trials = 1.0, 0.2, 200, 2000
    true_p95 = math.exp(mu + sigma * statistics.NormalDist().inv_cdf(0.95))
    ranks = stats.quantile_ci_ranks(n, 0.95, 0.95)
    assert ranks is not None
    lower, upper = ranks
    covered = 0
    for _ in range(trials):
        xs = sorted(rng.lognormvariate(mu, sigma) for _ in range(n))
        covered += xs[lower - 1] <= true_p95 <= xs[upper - 1]
    assert covered / trials >= 0.93


def test_relative_halfwidth_matches_measurement_budget() -> None:
    # Median relative half-width of the 95% p95 CI for lognormal sigma=0.2 at n=200 is about 7.0%.
    rng = random.Random(7)
    widths = []
    for _ in range(300):
        xs = sorted(rng.lognormvariate(0.0, 0.2) for _ in range(200))
        width = stats.relative_halfwidth(xs, 0.95, 0.95)
        assert width is not None
        widths.append(width)
    assert 0.060 <= statistics.median(widths) <= 0.080


def test_p95_ci_converged() -> None:
    rng = random.Random(3)
    tight = sorted(rng.lognormvariate(10, 0.01) for _ in range(500))
    noisy = sorted(rng.lognormvariate(10, 0.5) for _ in range(500))
    assert stats.p95_ci_converged(tight, 0.02)
    assert not stats.p95_ci_converged(noisy, 0.02)
    # 99% ranks for p95 first exist at n = 104 (0.95^n <= 0.005): before that, never converged.
    assert stats.relative_halfwidth(tight[:103], 0.95, 0.99) is None
    assert not stats.p95_ci_converged(tight[:103], 1.0)
    assert stats.relative_halfwidth(tight[:104], 0.95, 0.99) is not None


@pytest.mark.parametrize("q", [0.01, 0.07, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_nearest_rank_is_inverted_cdf(q: float) -> None:
    for n in [1, 2, 3, 10, 99, 100, 101, 1000, 1001]:
        values = list(range(10, 10 + n))
        rank = max(1, math.ceil(Fraction(str(q)) * n))
        assert stats.nearest_rank(values, q) == values[rank - 1], (n, q)
    xs = np.random.default_rng(1).lognormal(size=997)
    assert stats.nearest_rank(sorted(xs.tolist()), q) == float(np.quantile(xs, q, method="inverted_cdf"))


# --- warmup ---------------------------------------------------------------------------------


def test_warmup_stable_when_halves_match() -> None:
    rng = random.Random(5)
    half = [rng.gauss(1_000_000, 5_000) for _ in range(20)]
    second = half[1:] + half[:1]  # same values, other order: every difference is 0
    assert stats.warmup_stable(half + second)


def test_warmup_pass_rate_on_iid_noise_is_limited_by_the_mad_check() -> None:
    # Documents pyperf's strictness: MAD of 20 samples differs by > 10% most of the time.
    rng = random.Random(6)
    windows = [[rng.gauss(1_000_000, 5_000) for _ in range(40)] for _ in range(400)]
    rate = sum(stats.warmup_stable(w) for w in windows) / len(windows)
    assert 0.10 <= rate <= 0.35
    relaxed = sum(stats.warmup_stable(w, mad_tolerance=1.0) for w in windows) / len(windows)
    assert relaxed >= 0.90  # the rest fail on the quartile or first-sample checks


def test_warmup_unstable_when_still_warming() -> None:
    rng = random.Random(5)
    window = [1_000_000 * (1.0 + 0.3 * math.exp(-i / 10)) + rng.gauss(0, 2_000) for i in range(40)]
    report = stats.warmup_stability(window)
    assert not report["stable"]
    assert report["median_diff"] > 0.05


def test_warmup_unstable_on_slow_first_sample() -> None:
    rng = random.Random(5)
    window = [rng.gauss(1_000_000, 5_000) for _ in range(40)]
    window[0] = 3_000_000
    report = stats.warmup_stability(window)
    assert report["first_outlier"] and not report["stable"]
    assert report["median_diff"] is not None and abs(report["median_diff"]) <= 0.05


def test_warmup_stability_figures_use_linear_percentiles() -> None:
    window = [float(x) for x in range(100, 140)]
    report = stats.warmup_stability(window)
    first, second = np.array(window[:20]), np.array(window[20:])
    assert report["q1_diff"] == pytest.approx(
        (np.quantile(first, 0.25) - np.quantile(second, 0.25)) / np.quantile(second, 0.25)
    )
    assert report["median_diff"] == pytest.approx((np.median(first) - np.median(second)) / np.median(second))
    with pytest.raises(ValueError, match="at least 4"):
        stats.warmup_stable([1.0, 2.0, 3.0])


# --- summarize ------------------------------------------------------------------------------


def test_summarize_known_list() -> None:
    samples = [100_000 + 1_000 * i for i in range(100)]  # 100k .. 199k ns, ordered by rank
    random.Random(1).shuffle(samples)
    summary = stats.summarize(samples, n_warmup=5, loops=1, duration_s=1.5)
    assert summary["n"] == 100 and summary["n_warmup"] == 5 and summary["duration_s"] == 1.5
    assert summary["min"] == 100_000 and summary["max"] == 199_000
    assert summary["p50"] == 149_000  # rank 50 of 100 (nearest rank, not interpolated)
    assert summary["p90"] == 189_000 and summary["p95"] == 194_000
    assert summary["p99"] is None and any("p99" in note for note in summary["notes"])
    assert summary["ci95"]["p99"] is None
    assert summary["mean"] == pytest.approx(149_500)
    assert summary["stdev"] == pytest.approx(statistics.stdev(samples))
    assert summary["mad"] == pytest.approx(25_000)
    for name in ("p50", "p90", "p95"):
        lo, hi = summary["ci95"][name]
        assert lo <= summary[name] <= hi
    t90 = stats.early_stopping_t(100, 0.90)
    assert t90 == 3 and summary["es"]["p90"] == 197_000  # rank n - t + 1 = 98
    assert summary["es"]["p95"] is None and summary["es"]["p99"] is None
    assert {"few_samples_p95", "few_samples_p99"} <= set(summary["flags"])
    assert "few_samples_p50" not in summary["flags"]
    assert summary["outliers_mad"] == 0 and summary["outliers_iqr"] == 0
    json.dumps(summary, allow_nan=False)


def test_summarize_publishes_p99_above_floor_or_with_test_floors() -> None:
    rng = random.Random(2)
    samples = [int(rng.lognormvariate(13, 0.05)) for _ in range(700)]
    summary = stats.summarize(samples)
    assert summary["p99"] is not None and summary["ci95"]["p99"] is not None
    assert summary["p95"] <= summary["es"]["p95"] and summary["p99"] <= summary["es"]["p99"]
    assert not any(f.startswith("few_samples") for f in summary["flags"])
    small = stats.summarize(samples[:50], floors={"p50": 5, "p95": 10, "p99": 10})
    assert small["p99"] == max(samples[:50])  # published (no CI at n=50, though)
    assert small["ci95"]["p99"] is None and "few_samples_p99" not in small["flags"]


def test_summarize_quiet_input_has_no_flags() -> None:
    rng = random.Random(4)
    samples = [int(rng.gauss(2_000_000, 10_000)) for _ in range(1000)]
    summary = stats.summarize(samples, clock_resolution_ns=1.0)
    assert summary["flags"] == []


def test_summarize_flags_fire_on_crafted_inputs() -> None:
    rng = random.Random(4)
    base = [int(rng.gauss(2_000_000, 10_000)) for _ in range(200)]
    slow_first = [40_000_000, *base[1:]]
    flags = set(stats.summarize(slow_first)["flags"])
    assert "slow_initial" in flags
    # cv and max-vs-mean describe the distribution, not instability: no such flags any more.
    assert not flags & {"max_far", "cv_high"}
    assert stats.summarize(slow_first)["outliers_mad"] == 1
    # Short samples: min x loops < 1000 x resolution (samples are raw elapsed of `loops` calls).
    assert "short_samples" in stats.summarize(base, clock_resolution_ns=41_000.0)["flags"]
    hundred = [100 * x for x in base]
    assert "short_samples" not in stats.summarize(hundred, loops=100, clock_resolution_ns=41_000.0)["flags"]
    # A slow sample later in the run is an outlier but not a slow *initial* run.
    late = [*base[:-1], 40_000_000]
    assert "slow_initial" not in stats.summarize(late)["flags"]
    assert "few_samples_p50" in stats.summarize(base[:10])["flags"]


def test_summarize_mad_zero_is_floored_at_the_clock_resolution() -> None:
    # hyperfine replaces MAD == 0 by machine epsilon; a clock cannot resolve less than a tick.
    summary = stats.summarize([10_000] * 7 + [100_000] * 2)
    assert summary["mad"] == 0 and summary["outliers_mad"] == 2  # 90 us away is still an outlier


def test_ties_one_tick_apart_are_not_outliers() -> None:
    # Finding 5: 50 samples 1 ns above 150 others counted as 50 MAD outliers.
    assert stats.summarize([1_000_000] * 150 + [1_000_001] * 50)["outliers_mad"] == 0
    # ... and a first sample 1 ns slower raised slow_initial.
    assert "slow_initial" not in stats.summarize([1_000_001] + [1_000_000] * 199)["flags"]


def test_all_equal_samples_never_give_a_zero_width_interval() -> None:
    # Finding 5: all-equal samples gave a zero-width interval that "converged" at once.
    summary = stats.summarize([1000] * 200, clock_resolution_ns=42.0)
    lo, hi = summary["ci95"]["p95"]
    assert lo == 1000 - 42 and hi == 1000 + 42
    width = stats.relative_halfwidth([1000] * 200, resolution=42.0)
    assert width == pytest.approx(0.042)
    assert not stats.p95_ci_converged([1000] * 200, 0.02, resolution=42.0)


def test_non_positive_durations_are_rejected() -> None:
    # Finding 7: summarize([-5] * 200) published p95 = -5.
    with pytest.raises(ValueError, match="positive durations"):
        stats.summarize([-5] * 200)
    with pytest.raises(ValueError, match="positive durations"):
        stats.summarize([1000, 0, 1000])
    cell = stats.cell_summary(
        [-5] * 200,
        [0] * 200,
        [{}],
        loops=1,
        micro=False,
        clock_resolution_ns=1.0,
        want_p99=False,
        epsilon=0.02,
    )
    assert cell["p95"] is None and cell["flags"] == ["invalid_samples"] and "positive" in cell["notes"][0]
    json.dumps(cell, allow_nan=False)


def test_micro_op_statistics_divide_raw_elapsed_as_floats() -> None:
    # Finding 4: elapsed // loops truncated a 20 ns op. Raw elapsed of 524288 calls of ~20.6 ns:
    rng = random.Random(8)
    loops = 1 << 19
    elapsed = [round(loops * 20.6 * math.exp(0.02 * rng.gauss(0, 1))) for _ in range(400)]
    summary = stats.summarize(elapsed, loops=loops)
    per_call = sorted(x / loops for x in elapsed)
    assert summary["p95"] == stats.nearest_rank(per_call, 0.95)
    truncated = stats.nearest_rank(sorted(x // loops for x in elapsed), 0.95)
    assert truncated <= 21 < summary["p95"]  # the old figure lost the fraction
    assert summary["resolution_ns"] == pytest.approx(1.0 / loops)


def test_autocorrelated_run_is_flagged_and_its_interval_widened() -> None:
    # Finding 2: an AR(1) series (rho = 0.5) raised only cv_high / max_far.
    rng = random.Random(12)
    y, series = 0.0, []
    for _ in range(2000):
        y = 0.5 * y + math.sqrt(0.75) * rng.gauss(0, 1)
        series.append(math.exp(13 + 0.1 * y))
    summary = stats.summarize(series)
    assert "autocorrelated" in summary["flags"]
    assert summary["autocorrelation"]["lag1_rank"] > 0.4
    plain = stats.quantile_ci(sorted(series), 0.5)
    assert plain is not None
    lo, hi = summary["ci95"]["p50"]
    assert hi - lo > 1.3 * (plain[1] - plain[0])  # sqrt(VIF) ~ 1.5 for this process
    shuffled = series[:]
    rng.shuffle(shuffled)
    independent = stats.summarize(shuffled)
    assert "autocorrelated" not in independent["flags"]
    assert independent["autocorrelation"]["vif"]["p50"] == 1.0


def test_indicator_vif_matches_a_direct_computation() -> None:
    rng = random.Random(13)
    y, series = 0.0, []
    for _ in range(3000):
        y = 0.6 * y + rng.gauss(0, 1)
        series.append(y)
    cut = statistics.median(series)
    ind = np.array([1.0 if x <= cut else 0.0 for x in series])
    n, p = len(ind), float(ind.mean())
    total = 0.0
    for k in range(1, 11):
        both = float(np.sum(ind[:-k] * ind[k:]))
        total += (1 - k / n) * (both / (n - k) - p * p) / (p * (1 - p))
    assert stats.indicator_vif(series, cut) == pytest.approx(1 + 2 * total, rel=1e-12)
    assert stats.indicator_vif([1.0] * 50, 1.0) == 1.0  # a constant indicator has no variance


def test_lag1_rank_autocorrelation_matches_numpy() -> None:
    rng = random.Random(16)
    series = [rng.random() for _ in range(500)]
    ranks = sps.rankdata(series)
    dev = ranks - ranks.mean()
    expected = float(np.sum(dev[:-1] * dev[1:]) / np.sum(dev * dev))
    assert stats.lag1_rank_autocorrelation(series) == pytest.approx(expected, rel=1e-12)
    assert stats.lag1_rank_autocorrelation([1.0, 1.0, 1.0]) is None


def test_widened_ranks_scale_the_distance_from_the_estimate() -> None:
    n, q = 2000, 0.95
    base = stats.quantile_ci_ranks(n, q, 0.95)
    assert base is not None
    assert stats.widened_quantile_ranks(n, q, 0.95, 1.0) == base
    wide = stats.widened_quantile_ranks(n, q, 0.95, 4.0)
    assert wide is not None
    rank = stats.nearest_rank_index(n, q) + 1
    assert rank - wide[0] >= 2 * (rank - base[0]) and wide[1] - rank >= 2 * (base[1] - rank)
    assert stats.widened_quantile_ranks(130, q, 0.95, 4.0) is None  # beyond the sample max


def test_summarize_multi_run_publishes_the_run_level_t_interval() -> None:
    # Finding 1: the pooled interval treated all R x n samples as independent.
    rng = random.Random(9)
    run_ids = [r for r in range(5) for _ in range(400)]
    scale = {r: math.exp(0.05 * rng.gauss(0, 1)) for r in range(5)}
    samples = [scale[r] * rng.lognormvariate(13, 0.1) for r in run_ids]
    summary = stats.summarize(samples, run_ids=run_ids, clock_resolution_ns=0.0)
    assert summary["interval_method"] == "t_log_runs" and summary["runs"] == [0, 1, 2, 3, 4]
    per_run_p95 = [
        stats.nearest_rank(sorted(x for x, r in zip(samples, run_ids, strict=True) if r == run), 0.95)
        for run in range(5)
    ]
    logs = np.log(per_run_p95)
    half = sps.t.ppf(0.975, 4) * logs.std(ddof=1) / math.sqrt(5)
    lo, hi = summary["ci95"]["p95"]
    assert lo == pytest.approx(math.exp(logs.mean() - half))
    assert hi == pytest.approx(math.exp(logs.mean() + half))
    assert summary["p95"] == pytest.approx(math.exp(logs.mean()))
    level = summary["run_level"]
    assert level["n_runs"] == 5 and level["p95"]["values"] == per_run_p95 and level["p95"]["df"] == 4
    assert [run["n"] for run in level["per_run"]] == [400] * 5
    assert all(run["ci95"]["p95"] is not None for run in level["per_run"])  # within-run, per run
    assert summary["pooled"]["p95"] == stats.nearest_rank(sorted(samples), 0.95)
    json.dumps(summary, allow_nan=False)


def test_need_more_runs_means_the_run_level_interval_misses_epsilon() -> None:
    rng = random.Random(10)
    run_ids = [r for r in range(5) for _ in range(300)]
    steady = [rng.gauss(1_000_000, 1_000) for _ in run_ids]
    summary = stats.summarize(steady, run_ids=run_ids)
    assert summary["run_cv"] < 0.001 and "need_more_runs" not in summary["flags"]
    assert summary["required_runs"] == 2
    spread = [x * (1 + 0.03 * r) for x, r in zip(steady, run_ids, strict=True)]
    summary = stats.summarize(spread, run_ids=run_ids, epsilon=0.02)
    level = summary["run_level"]["p95"]
    assert level["rel_halfwidth"] > 0.02 and "need_more_runs" in summary["flags"]
    required = summary["required_runs"]
    assert required > 5
    assert sps.t.ppf(0.975, required - 1) * level["log_sd"] / math.sqrt(required) <= 0.02
    assert sps.t.ppf(0.975, required - 2) * level["log_sd"] / math.sqrt(required - 1) > 0.02
    with pytest.raises(ValueError, match="run_ids"):
        stats.summarize(steady, run_ids=run_ids[:-1])


def test_floors_apply_to_the_smallest_run() -> None:
    run_ids = [0] * 200 + [1] * 40
    samples = [1_000_000.0 + i for i in range(240)]
    flags = stats.summarize(samples, run_ids=run_ids)["flags"]
    assert "few_samples_p95" in flags and "few_samples_p50" not in flags


def test_few_samples_p99_only_when_p99_is_wanted() -> None:
    samples = [1_000_000.0 + i for i in range(200)]
    assert "few_samples_p99" in stats.summarize(samples)["flags"]
    assert "few_samples_p99" not in stats.summarize(samples, want_p99=False)["flags"]


def test_not_converged_is_flagged_from_the_stop_reasons() -> None:
    # Finding 9: a heavy tail that never reached epsilon was recorded only in stop_reason.
    samples = [1_000_000.0 + i for i in range(200)]
    assert "not_converged" in stats.summarize(samples, stop_reasons=["max_duration"])["flags"]
    assert "not_converged" in stats.summarize(samples, stop_reasons=["max_samples"])["flags"]
    assert "not_converged" not in stats.summarize(samples, stop_reasons=["converged"])["flags"]


def test_a_run_ended_by_the_stopping_rule_publishes_its_99_percent_ranks() -> None:
    # Finding 10: runs the rule ends early are those whose interval looked narrow by chance.
    rng = random.Random(14)
    samples = [rng.lognormvariate(13, 0.1) for _ in range(600)]
    ordered = sorted(samples)
    stopped = stats.summarize(samples, stop_reasons=["converged"], clock_resolution_ns=0.0)
    assert stopped["ci95"]["p95"] == list(stats.quantile_ci(ordered, 0.95, 0.99) or ())
    ceiling = stats.summarize(samples, stop_reasons=["max_samples"], clock_resolution_ns=0.0)
    assert ceiling["ci95"]["p95"] == list(stats.quantile_ci(ordered, 0.95, 0.95) or ())


def test_cell_summary_of_a_micro_op_cell_has_no_p99_anywhere() -> None:
    rng = random.Random(15)
    run_ids = [r for r in range(2) for _ in range(700)]
    elapsed = [round(1024 * 300 * rng.lognormvariate(0, 0.05)) for _ in run_ids]
    per_run = [{"n_warmup": 3, "duration_s": 1.0, "stop_reason": "converged"}] * 2
    summary = stats.cell_summary(
        elapsed,
        run_ids,
        per_run,
        loops=1024,
        micro=True,
        clock_resolution_ns=1.0,
        want_p99=True,
        epsilon=0.02,
    )
    assert summary["p99"] is None and summary["ci95"]["p99"] is None and summary["pooled"]["p99"] is None
    assert "p99" not in summary["run_level"]
    assert all(r["p99"] is None for r in summary["run_level"]["per_run"])
    assert "few_samples_p99" not in summary["flags"] and summary["n_warmup"] == 6
    assert 250 < summary["p50"] < 350  # per-call ns
    merged = stats.merge_run_details([{"run": 0, "p50": 1.0}, {"run": 1, "p50": 2.0}], summary)
    assert merged[1]["p50"] == 2.0 and merged[1]["ci95"] == summary["run_level"]["per_run"][1]["ci95"]


def test_summarize_empty_and_bad_input() -> None:
    empty = stats.summarize([])
    assert empty["n"] == 0 and empty["p50"] is None and empty["flags"] == ["no_samples"]
    json.dumps(empty, allow_nan=False)
    with pytest.raises(ValueError, match="non-finite"):
        stats.summarize([1.0, math.nan])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=800))
def test_summarize_properties(samples: list[int]) -> None:
    summary = stats.summarize(samples)
    assert summary["n"] == len(samples)
    assert summary["min"] <= summary["p50"] <= summary["p90"] <= summary["p95"] <= summary["max"]
    if summary["p99"] is not None:
        assert summary["p95"] <= summary["p99"] <= summary["max"]
    for name in ("p50", "p90", "p95", "p99"):
        ci = summary["ci95"][name]
        if ci is not None:
            assert ci[0] <= summary[name] <= ci[1]
    for name, es in summary["es"].items():
        if es is not None:
            assert summary["p50"] <= es <= summary["max"], name
    json.dumps(summary, allow_nan=False)


# --- two-sample tests -----------------------------------------------------------------------


def _samples(seed: int) -> list[tuple[list[float], list[float]]]:
    rng = random.Random(seed)
    return [
        ([rng.gauss(0, 1) for _ in range(30)], [rng.gauss(0.5, 1) for _ in range(45)]),
        (
            [float(rng.randint(0, 5)) for _ in range(40)],
            [float(rng.randint(1, 6)) for _ in range(33)],
        ),  # ties
        ([1.0, 2.0, 3.0], [4.0, 5.0]),
        ([rng.lognormvariate(0, 1) for _ in range(500)], [rng.lognormvariate(0.05, 1) for _ in range(700)]),
    ]


def test_mann_whitney_matches_scipy() -> None:
    for a, b in _samples(11):
        u, p = stats.mann_whitney_u(a, b)
        expected = sps.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
        assert u == pytest.approx(expected.statistic)
        assert p == pytest.approx(expected.pvalue, abs=1e-6)
    assert stats.mann_whitney_u([1.0, 1.0], [1.0, 1.0])[1] == 1.0


def test_kendall_tau_matches_scipy() -> None:
    rng = random.Random(13)
    cases: list[tuple[list[float], list[float]]] = [
        ([float(i) for i in range(50)], [i + rng.gauss(0, 10) for i in range(50)]),
        ([float(rng.randint(0, 4)) for _ in range(60)], [float(rng.randint(0, 3)) for _ in range(60)]),
        ([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]),
        ([float(i) for i in range(300)], [rng.random() for _ in range(300)]),
    ]
    for x, y in cases:
        tau, p = stats.kendall_tau(x, y)
        expected = sps.kendalltau(x, y, method="asymptotic")
        assert tau == pytest.approx(expected.statistic, abs=1e-12)
        assert p == pytest.approx(expected.pvalue, abs=1e-9)
    tau, p = stats.kendall_tau([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    assert math.isnan(tau) and math.isnan(p)


# --- bootstrap and drift --------------------------------------------------------------------


def test_bootstrap_is_deterministic_and_sensible() -> None:
    rng = random.Random(17)
    a = [rng.lognormvariate(0, 0.1) for _ in range(300)]
    b = [1.2 * rng.lognormvariate(0, 0.1) for _ in range(301)]
    first = stats.bootstrap_ratio_ci(a, b, seed=1)
    assert first == stats.bootstrap_ratio_ci(a, b, seed=1)
    assert first != stats.bootstrap_ratio_ci(a, b, seed=2)
    ratio, lo, hi = first
    assert ratio == pytest.approx(statistics.median(b) / statistics.median(a))
    assert lo < ratio < hi and lo < 1.2 < hi and lo > 1.1
    mean_ratio, mean_lo, mean_hi = stats.bootstrap_ratio_ci(a, b, stat=statistics.fmean, n_resamples=300)
    assert mean_lo < mean_ratio < mean_hi and mean_lo < 1.2 < mean_hi


@pytest.mark.parametrize("m", [15, 16])
def test_fast_bootstrap_median_has_the_resampling_distribution(m: int) -> None:
    xs = [float(v) for v in range(m)]  # value = 0-based index
    rng = random.Random(23)
    draws = 20_000
    fast = [stats._bootstrap_median(xs, rng) for _ in range(draws)]
    naive = [statistics.median(rng.choices(xs, k=m)) for _ in range(draws)]
    for cut in [m / 4, m / 2 - 1, m / 2, m / 2 + 1, 3 * m / 4]:
        assert sum(v <= cut for v in fast) / draws == pytest.approx(
            sum(v <= cut for v in naive) / draws, abs=0.015
        )
    if m % 2:
        # Exact: P(median* <= x_(j)) = P(Bin(m, j/m) >= k), k = (m+1)/2, j 1-based.
        k = (m + 1) // 2
        for j in range(4, 12):
            exact = sps.binom.sf(k - 1, m, j / m)
            assert sum(v <= j - 1 for v in fast) / draws == pytest.approx(exact, abs=0.012)


def test_drift_detects_a_step_and_ignores_a_stationary_series() -> None:
    rng = random.Random(29)
    burst = [rng.lognormvariate(13, 0.1) for _ in range(1000)]
    sustained = [rng.lognormvariate(13, 0.1) for _ in range(5000)]
    stepped = [x * (1.10 if i >= 2500 else 1.0) for i, x in enumerate(sustained)]
    quiet = stats.drift(burst, sustained)
    assert quiet["method"] == "burst_vs_final_window" and quiet["final_fraction"] == 0.2
    assert not quiet["flag"] and not quiet["trend_flag"] and quiet["flags"] == []
    assert quiet["ci95"][0] <= 1.0 <= quiet["ci95"][1]
    shifted = stats.drift(burst, stepped)
    assert shifted["flag"] and shifted["trend_flag"] and shifted["flags"] == ["thermal_drift", "trend"]
    assert shifted["ratio"] == pytest.approx(1.10, abs=0.02)
    # burst = the whole measured phase; sustained = the last 20% of the sustained phase
    assert shifted["mw_p"] < 1e-6 and shifted["burst"]["n"] == 1000 and shifted["sustained"]["n"] == 1000
    assert shifted["burst"]["p50"] < shifted["sustained"]["p50"]
    json.dumps(shifted, allow_nan=False)


def test_drift_of_a_linear_rise_is_not_diluted_by_the_sustained_phase() -> None:
    # Finding 3: "burst" was the first 20% of the whole timeline, so a +25% rise read as 1.197.
    rng = random.Random(30)
    burst = [rng.lognormvariate(13, 0.02) for _ in range(1000)]
    n = 20_000
    t_ns = [10e9 + 45e6 * i for i in range(n)]  # 15 minutes
    rising = [rng.lognormvariate(13, 0.02) * (1 + 0.25 * i / n) for i in range(n)]
    result = stats.drift(burst, rising, sustained_t_ns=t_ns)
    assert result["ratio"] == pytest.approx(1.225, abs=0.01)  # the mid-point of the last 20%
    assert result["window_s"] == pytest.approx(0.2 * (t_ns[-1] - t_ns[0]) / 1e9)
    assert result["ci95"][0] > 1.2


def test_drift_window_is_by_time_when_timestamps_exist() -> None:
    rng = random.Random(31)
    burst = [rng.gauss(1e6, 1e4) for _ in range(500)]
    # 30 s sustained phase, samples twice as dense in its last 6 s, 8% slower after 15 s.
    t_ns = sorted(
        [rng.uniform(0, 24e9) for _ in range(2000)] + [rng.uniform(24e9, 30e9) for _ in range(1000)]
    )
    sustained = [rng.gauss(1e6, 1e4) * (1.08 if t > 15e9 else 1.0) for t in t_ns]
    result = stats.drift(burst, sustained, sustained_t_ns=t_ns)
    assert result["sustained"]["n"] == sum(t >= t_ns[-1] - 0.2 * (t_ns[-1] - t_ns[0]) for t in t_ns)
    assert result["flag"] and result["ratio"] == pytest.approx(1.08, abs=0.01)
    assert result["trend_points"] == 30  # 1-second bins
    with pytest.raises(ValueError, match="non-decreasing"):
        stats.drift(burst, [1.0, 2.0], sustained_t_ns=[2.0, 1.0])


def test_drift_widens_for_autocorrelated_windows() -> None:
    rng = random.Random(32)

    def ar(n: int) -> list[float]:
        y, out = 0.0, []
        for _ in range(n):
            y = 0.7 * y + math.sqrt(1 - 0.49) * rng.gauss(0, 1)
            out.append(math.exp(13 + 0.1 * y))
        return out

    burst, sustained = ar(2000), ar(10_000)
    dependent = stats.drift(burst, sustained)
    independent = stats.drift(
        sorted(burst, key=lambda _: rng.random()), sorted(sustained, key=lambda _: rng.random())
    )
    assert dependent["dependence_scale"]["burst"] > 1.5 and independent["dependence_scale"]["burst"] == 1.0
    width = dependent["ci95"][1] - dependent["ci95"][0]
    assert width > 1.5 * (independent["ci95"][1] - independent["ci95"][0])


def test_drift_too_few_samples() -> None:
    result = stats.drift([1.0] * 20, [1.0] * 20)
    assert result["ratio"] is None and not result["flag"] and "windows need" in result["reason"]


def test_binom_ppf_exact_tie() -> None:
    # By symmetry P[Bin(n, 1/2) <= (n-1)/2] is exactly 1/2 for odd n: the ppf is (n-1)/2.
    for n in [99, 101, 1001, 9999, 99_999]:
        assert stats.binom_ppf(0.5, n, 0.5) == (n - 1) // 2


def test_mann_whitney_continuity_never_flips_sign() -> None:
    # Finding 6: |U - mu| < 0.5 made the corrected distance negative (p = 0.8597, scipy 1.0).
    a, b = [1.0, 2.0, 3.0], [1.5, 2.5, 3.5, 0.5]
    _, p = stats.mann_whitney_u(a, b)
    assert p == pytest.approx(sps.mannwhitneyu(a, b, method="asymptotic").pvalue) and p == 1.0


# --- Student t (node_agent.tdist) against scipy ------------------------------------------------

_DFS = [1.0, 1.5, 2.0, 2.7, 3.0, 4.0, 5.3, 9.0, 30.0, 123.4, 1e3, 1e4, 1e5, 1e6]


@pytest.mark.parametrize("df", _DFS)
def test_t_cdf_and_sf_match_scipy(df: float) -> None:
    for x in [-50.0, -10.0, -3.0, -2.1, -1.0, -0.3, -1e-3, 0.0, 1e-4, 0.5, 1.7, 2.776, 5.0, 20.0]:
        for ours, theirs in ((tdist.t_cdf(x, df), sps.t.cdf(x, df)), (tdist.t_sf(x, df), sps.t.sf(x, df))):
            if theirs < 1e-3:
                assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-300), (x, df)
            else:
                assert ours == pytest.approx(theirs, abs=1e-9), (x, df)


@pytest.mark.parametrize("df", _DFS)
def test_t_ppf_matches_scipy(df: float) -> None:
    for p in [1e-10, 1e-4, 0.001, 0.025, 0.05, 0.3, 0.5, 0.7, 0.975, 0.995, 1 - 1e-6]:
        assert tdist.t_ppf(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-9, abs=1e-12), (p, df)
        assert tdist.t_cdf(tdist.t_ppf(p, df), df) == pytest.approx(p, rel=1e-9)


def test_t_edges() -> None:
    assert tdist.t_ppf(0.0, 5) == -math.inf and tdist.t_ppf(1.0, 5) == math.inf
    assert tdist.t_cdf(math.inf, 3) == 1.0 and tdist.t_sf(-math.inf, 3) == 1.0
    assert tdist.t_ppf(0.975, math.inf) == pytest.approx(1.959963984540054)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="degrees of freedom"):
            tdist.t_cdf(0.0, bad)
    with pytest.raises(ValueError, match="probability"):
        tdist.t_ppf(1.5, 3)
