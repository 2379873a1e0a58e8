"""Statistics for benchmark samples, in pure stdlib (the agent runs on bare nodes).

The method is described in docs/MEASUREMENT.md; this module holds its arithmetic:

* Exact binomial CDF / quantile (Loader's saddle-point pmf, summed only where terms matter),
  fast enough for n around 1e5.
* Distribution-free order-statistic confidence intervals for quantiles.
* MLPerf LoadGen early stopping (``h(t)``, SingleStream estimate).
* Nearest-rank (``inverted_cdf``) quantiles: order-statistic CIs and LoadGen both use ranks.
* pyperf-style warmup check, hyperfine / Tukey outlier counts, instability flags.
* Mann-Whitney U, Kendall tau-b, a seeded percentile bootstrap of a ratio of medians, and
  the burst-vs-sustained drift test.

Samples are never dropped or altered: outliers are counted and flagged only.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from node_agent.tdist import t_ppf

# --- named constants ---------------------------------------------------------------------------

#: Count floors (per run) before a percentile is trusted (docs/MEASUREMENT.md, "Floors"); p95 and p99 are the
#: MLPerf early-stopping minimums at 99% confidence.
MIN_SAMPLES_P50 = 20
MIN_SAMPLES_P95 = 130
MIN_SAMPLES_P99 = 662

#: hyperfine's outlier threshold: |x - median| / MAD > 1.4826 * 10 (about 10 robust SDs).
MODIFIED_Z_THRESHOLD = 1.4826 * 10.0
#: pyperf's warmup calibration: two halves of this many samples each.
WARMUP_SAMPLE_SIZE = 20
#: LoadGen's early-stopping confidence (results.cc: ``double confidence = 0.99``).
EARLY_STOPPING_CONFIDENCE = 0.99

AUTOCORR_Z = 2.326  # one-sided 1% test of the lag-1 rank autocorrelation
AUTOCORR_MIN_N = 20  # fewer samples: no serial-dependence test
AUTOCORR_MAX_LAG = 10  # lags summed in the indicator's variance inflation factor
SHORT_SAMPLE_FACTOR = 1000  # pyperf warns below 1 ms; we use 1000 x the clock resolution
DRIFT_MIN_EFFECT = 0.03  # thermal_drift needs |ratio - 1| >= 3%
TREND_TAU = 0.2
TREND_P = 0.01
DRIFT_MIN_WINDOW = 5  # samples per window below which drift is not computed
SUSTAINED_FINAL_FRACTION = 0.2  # "sustained" = the last 20% of the sustained phase (by time)

_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LN_2PI = math.log(2.0 * math.pi)
_NORMAL = statistics.NormalDist()

# --- binomial distribution ---------------------------------------------------------------------


def _stirlerr(n: float) -> float:
    """log(n!) - log(sqrt(2*pi*n) * (n/e)**n), the Stirling error (Loader 2000)."""
    if n <= 15.0:
        return math.lgamma(n + 1.0) - (n + 0.5) * math.log(n) + n - _LN_SQRT_2PI
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    nn = n * n
    if n > 500:
        return (s0 - s1 / nn) / n
    if n > 80:
        return (s0 - (s1 - s2 / nn) / nn) / n
    if n > 35:
        return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n
    return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n


def _bd0(x: float, mean: float) -> float:
    """x*log(x/mean) + mean - x, computed without cancellation when x is close to mean."""
    if abs(x - mean) < 0.1 * (x + mean):
        v = (x - mean) / (x + mean)
        s = (x - mean) * v
        ej = 2.0 * x * v
        v2 = v * v
        for j in range(1, 1000):
            ej *= v2
            s_next = s + ej / (2 * j + 1)
            if s_next == s:
                return s_next
            s = s_next
        return s
    return x * math.log(x / mean) + mean - x


def _log_binom_pmf(k: int, n: int, p: float) -> float:
    """log P[Bin(n, p) = k] for 0 < p < 1, accurate to a few ulps (Loader's algorithm)."""
    q = 1.0 - p
    if k < 0 or k > n:
        return -math.inf
    if k == 0:
        return -_bd0(n, n * q) - n * p if p < 0.1 else n * math.log(q)
    if k == n:
        return -_bd0(n, n * p) - n * q if q < 0.1 else n * math.log(p)
    lc = _stirlerr(n) - _stirlerr(k) - _stirlerr(n - k) - _bd0(k, n * p) - _bd0(n - k, n * q)
    lf = _LN_2PI + math.log(k) + math.log1p(-k / n)
    return lc - 0.5 * lf


def _check_binom_args(n: int, p: float) -> None:
    if n < 0:
        raise ValueError(f"binomial n must be >= 0, got {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"binomial p must be in [0, 1], got {p}")


def binom_cdf(k: int, n: int, p: float) -> float:
    """P[Bin(n, p) <= k].

    Sums pmf terms by recurrence from k *away from the mode* (the lower tail when k is below
    the mode, else 1 - the upper tail) and stops once terms fall below 1e-17 of the sum, so
    the cost is O(sqrt(n)) terms. Matches scipy.stats.binom.cdf to ~1e-13 relative.
    """
    _check_binom_args(n, p)
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    odds = p / (1.0 - p)
    mode = math.floor((n + 1) * p)
    if k < mode:
        # Terms decrease monotonically as i goes down from k (k is left of the mode).
        term = math.exp(_log_binom_pmf(k, n, p))
        total = term
        i = k
        while i > 0 and term > total * 1e-17:
            term *= i / ((n - i + 1) * odds)  # pmf(i-1) from pmf(i)
            i -= 1
            total += term
        return min(1.0, total)
    # k >= mode: terms decrease monotonically as i goes up from k+1.
    i = k + 1
    term = math.exp(_log_binom_pmf(i, n, p))
    total = term
    while i < n and term > total * 1e-17:
        term *= (n - i) / (i + 1) * odds  # pmf(i+1) from pmf(i)
        i += 1
        total += term
    return max(0.0, 1.0 - total)


def binom_ppf(q: float, n: int, p: float) -> int:
    """Smallest k in [0, n] with binom_cdf(k, n, p) >= q.

    Starts from a Cornish-Fisher normal approximation, then steps locally. A CDF within
    1e-13 (relative) below q counts as reaching it: floating point cannot decide such
    knife-edge cases, and exact ties do occur (Bin(odd n, 1/2) has CDF exactly 1/2 at
    (n-1)/2). Same as scipy.stats.binom.ppf for 0 < q <= 1 (scipy gives -1 for q == 0, we 0).
    """
    _check_binom_args(n, p)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1], got {q}")
    if q == 0.0 or p == 0.0 or n == 0:
        return 0
    if q == 1.0 or p == 1.0:
        return n
    mean = n * p
    sd = math.sqrt(n * p * (1.0 - p))
    z = _NORMAL.inv_cdf(q)
    guess = mean + sd * z + (z * z - 1.0) * (1.0 - 2.0 * p) / 6.0 - 0.5
    k = min(n, max(0, math.ceil(guess)))
    target = q * (1.0 - 1e-13)
    if binom_cdf(k, n, p) >= target:
        while k > 0 and binom_cdf(k - 1, n, p) >= target:
            k -= 1
    else:
        k += 1
        while k < n and binom_cdf(k, n, p) < target:
            k += 1
    return k


# --- quantiles and their confidence intervals --------------------------------------------------


def nearest_rank_index(n: int, q: float) -> int:
    """0-based index of the nearest-rank (numpy ``inverted_cdf``) q-quantile of n sorted values.

    The 1-based rank is ceil(q*n), clamped to [1, n]; q*n within 1e-9 of an integer counts as
    that integer so that decimal levels behave as written (0.07*100 is rank 7, not 8).
    """
    if n <= 0:
        raise ValueError("nearest_rank needs at least one value")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1], got {q}")
    r = q * n
    rounded = round(r)
    rank = rounded if abs(r - rounded) <= 1e-9 * max(1.0, r) else math.ceil(r)
    return min(n, max(1, rank)) - 1


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile of ascending ``sorted_values`` by nearest rank (``inverted_cdf``)."""
    return sorted_values[nearest_rank_index(len(sorted_values), q)]


def quantile_ci_coverage(n: int, q: float, lower: int, upper: int) -> float:
    """Exact P(x_(lower) <= Q_q <= x_(upper)) for n i.i.d. continuous samples (1-based ranks).

    With B = #{X_i < Q_q} ~ Bin(n, q): x_(l) <= Q  <=>  B >= l, and x_(u) >= Q  <=>  B <= u-1,
    so the coverage is F(u-1) - F(l-1).
    """
    return binom_cdf(upper - 1, n, q) - binom_cdf(lower - 1, n, q)


def quantile_ci_ranks(n: int, q: float, conf: float = 0.95) -> tuple[int, int] | None:
    """1-based order-statistic ranks (l, u) of the exact two-sided ``conf`` CI of the q-quantile.

    Distribution-free (continuous i.i.d. samples), equal-tailed (docs/MEASUREMENT.md, "Intervals"):
    ``l = binom.ppf(alpha/2, n, q)`` and ``u = binom.ppf(1 - alpha/2, n, q) + 1`` with
    alpha = 1 - conf; the CI is [x_(l), x_(u)] = [sorted[l-1], sorted[u-1]]. Because
    F(l-1) < alpha/2 and F(u-1) >= 1 - alpha/2, the coverage F(u-1) - F(l-1) is > conf; this is
    re-checked with :func:`quantile_ci_coverage` (and the interval widened if rounding ever
    broke it). Returns None when no such interval exists (l < 1 or u > n: n too small; the
    first n for q=0.95 is 72, for q=0.99 it is 368, for q=0.5 it is 6).
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {conf}")
    if n < 1:
        return None
    alpha = 1.0 - conf
    lower = binom_ppf(alpha / 2.0, n, q)
    upper = binom_ppf(1.0 - alpha / 2.0, n, q) + 1
    if lower < 1 or upper > n:
        return None
    while quantile_ci_coverage(n, q, lower, upper) < conf:  # defensive: never seen to trigger
        if lower > 1:
            lower -= 1
        elif upper < n:
            upper += 1
        else:
            return None
    return lower, upper


def quantile_ci(sorted_values: Sequence[float], q: float, conf: float = 0.95) -> tuple[float, float] | None:
    """[x_(l), x_(u)] from :func:`quantile_ci_ranks`, or None when n is too small."""
    ranks = quantile_ci_ranks(len(sorted_values), q, conf)
    if ranks is None:
        return None
    return sorted_values[ranks[0] - 1], sorted_values[ranks[1] - 1]


def relative_halfwidth(
    sorted_ns: Sequence[float],
    q: float = 0.95,
    conf: float = 0.99,
    *,
    inflation: float = 1.0,
    resolution: float = 0.0,
) -> float | None:
    """Half the width of the ``conf`` CI of the q-quantile relative to the estimate, or None.

    The interval is widened by sqrt(``inflation``) (serial dependence, see
    :func:`widened_quantile_ranks`) and by ``resolution`` on each side: a clock cannot tell
    values closer than its resolution apart, so tied samples never give a zero width.
    """
    ranks = widened_quantile_ranks(len(sorted_ns), q, conf, inflation)
    if ranks is None:
        return None
    estimate = nearest_rank(sorted_ns, q)
    if estimate <= 0:
        return None
    width = sorted_ns[ranks[1] - 1] - sorted_ns[ranks[0] - 1] + 2.0 * resolution
    return width / (2.0 * estimate)


def p95_ci_converged(
    sorted_ns: Sequence[float],
    epsilon: float,
    conf: float = 0.99,
    *,
    inflation: float = 1.0,
    resolution: float = 0.0,
) -> bool:
    """One look of the stopping rule: the p95 CI's relative half-width <= epsilon.

    Uses 99% ranks by default so that repeated looks do not erode the coverage of the
    published 95% CI; the harness also asks for two consecutive passing looks
    (docs/MEASUREMENT.md, "Stopping"). False while no CI exists.
    """
    width = relative_halfwidth(sorted_ns, 0.95, conf, inflation=inflation, resolution=resolution)
    return width is not None and width <= epsilon


# --- MLPerf LoadGen early stopping -------------------------------------------------------------


@lru_cache(maxsize=8192)
def es_min_passing(t: int, p: float, conf: float = EARLY_STOPPING_CONFIDENCE) -> int:
    """LoadGen ``h(t)``: smallest h with P[Bin(h + t, 1 - p) <= t] <= 1 - conf (tolerance d = 0).

    t is the number of over-latency queries seen. Solved by a normal-approximation guess,
    galloping to a bracket, then bisection (the predicate is monotone in h).
    Vectors: h(0, .99) = 459, h(0, .95) = 90, h(0, .9) = 44.
    """
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    if not 0.0 < p < 1.0 or not 0.0 < conf < 1.0:
        raise ValueError(f"p and conf must be in (0, 1), got p={p} conf={conf}")
    fail_p = 1.0 - p
    alpha = 1.0 - conf

    def passes(h: int) -> bool:
        return binom_cdf(t, h + t, fail_p) <= alpha

    z = _NORMAL.inv_cdf(conf)
    root = (z * math.sqrt(p * fail_p) + math.sqrt(z * z * p * fail_p + 4.0 * fail_p * t)) / (2.0 * fail_p)
    guess = max(0, int(root * root) - t)
    # Find lo (fails, or -1) and hi (passes) around the guess, then bisect.
    step = 1
    if passes(guess):
        hi = guess
        while True:
            lo = hi - step
            if lo < 0:
                lo = -1
                break
            if not passes(lo):
                break
            hi = lo
            step *= 2
    else:
        lo = guess
        while True:
            hi = lo + step
            if passes(hi):
                break
            lo = hi
            step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


def early_stopping_min_queries(p: float, conf: float = EARLY_STOPPING_CONFIDENCE) -> int:
    """h(1) + 1: the fewest queries for which LoadGen gives any estimate (p90: 64, p95: 130, p99: 662)."""
    return es_min_passing(1, p, conf) + 1


def early_stopping_t(n: int, p: float, conf: float = EARLY_STOPPING_CONFIDENCE) -> int:
    """Largest t with n >= h(t) + t (0 when there is none).

    n >= h(t) + t  <=>  P[Bin(n, 1-p) <= t] <= 1 - conf, because that probability falls as the
    number of trials grows; so the guess comes from binom_ppf and is then checked against h(t).
    """
    if n < early_stopping_min_queries(p, conf):
        return 0

    def ok(t: int) -> bool:
        return n >= es_min_passing(t, p, conf) + t

    t = max(1, binom_ppf(1.0 - conf, n, 1.0 - p) - 1)
    while ok(t + 1):
        t += 1
    while t > 1 and not ok(t):
        t -= 1
    return t


def early_stopping_rank(n: int, p: float, conf: float = EARLY_STOPPING_CONFIDENCE) -> int | None:
    """1-based rank of the early-stopping estimate among n sorted values (n - t + 1), or None."""
    t = early_stopping_t(n, p, conf)
    return None if t == 0 else n - t + 1


def early_stopping_estimate(
    sorted_ns: Sequence[float], p: float, conf: float = EARLY_STOPPING_CONFIDENCE
) -> float | None:
    """MLPerf SingleStream early-stopping estimate of the p-quantile (LoadGen results.cc).

    With q = len(sorted_ns): find the largest t with q >= h(t) + t, discard the t - 1 highest
    values, report the max of the rest, ``sorted_ns[q - t]`` (0-based, ascending). None when
    q < h(1) + 1 (LoadGen rejects the run). At q = 1024 this is rank 945 for p90, 990 for p95.
    """
    rank = early_stopping_rank(len(sorted_ns), p, conf)
    return None if rank is None else sorted_ns[rank - 1]


# --- small descriptive helpers -----------------------------------------------------------------


def _linear_percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy 'linear', pyperf's percentile)."""
    k = (len(sorted_values) - 1) * q
    f = math.floor(k)
    c = math.ceil(k)
    if f == c:
        return float(sorted_values[f])
    return sorted_values[f] * (c - k) + sorted_values[c] * (k - f)


def _median_sorted(sorted_values: Sequence[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    if n % 2:
        return float(sorted_values[mid])
    return (sorted_values[mid - 1] + sorted_values[mid]) / 2.0


def _mad(values: Sequence[float], median: float) -> float:
    """Raw (unscaled) median absolute deviation around ``median``, as pyperf and hyperfine."""
    return _median_sorted(sorted(abs(x - median) for x in values))


def _rel_diff(a: float, b: float) -> float | None:
    """(a - b) / b; None when b == 0 and a != 0 (undefined, treated as unstable)."""
    if b == 0:
        return 0.0 if a == 0 else None
    return (a - b) / b


def warmup_stability(
    window: Sequence[float],
    *,
    median_tolerance: float = 0.05,
    quartile_tolerance: float = 0.05,
    mad_tolerance: float = 0.10,
) -> dict[str, Any]:
    """The pyperf-style warmup check (docs/MEASUREMENT.md, "Warmup"), with every figure it used.

    The window (normally 2 x WARMUP_SAMPLE_SIZE = 40 samples, in measured order) is split
    into halves; relative differences are (first - second) / second. Stable when the first
    sample is not above Q3 + 1.5*IQR of the other samples (pyperf checks only the maximum),
    the halves' medians differ by <= 5%, their Q1 and Q3 each by <= 5% and their MADs by
    <= 10%. (We compare medians where pyperf checks means within [-50%, +10%].)

    Note: the MAD test dominates. The MAD of 20 samples is itself noisy, so on perfectly
    stationary i.i.d. noise only about 20% of windows pass (measured: 0.21 for Gaussian
    noise); the warmup loop then converges by adding warmups until a window passes, as in
    pyperf. The tolerances are parameters so that this can be tuned on real data.
    """
    if len(window) < 4:
        raise ValueError(f"warmup window needs at least 4 samples, got {len(window)}")
    half = len(window) // 2
    first = sorted(window[:half])
    second = sorted(window[half:])
    rest = sorted(window[1:])
    q1, q3 = _linear_percentile(rest, 0.25), _linear_percentile(rest, 0.75)
    first_outlier = window[0] > q3 + 1.5 * (q3 - q1)
    med1, med2 = _median_sorted(first), _median_sorted(second)
    diffs = {
        "median_diff": _rel_diff(med1, med2),
        "q1_diff": _rel_diff(_linear_percentile(first, 0.25), _linear_percentile(second, 0.25)),
        "q3_diff": _rel_diff(_linear_percentile(first, 0.75), _linear_percentile(second, 0.75)),
        "mad_diff": _rel_diff(_mad(first, med1), _mad(second, med2)),
    }
    limits = {
        "median_diff": median_tolerance,
        "q1_diff": quartile_tolerance,
        "q3_diff": quartile_tolerance,
        "mad_diff": mad_tolerance,
    }
    within = all(d is not None and abs(d) <= limits[name] for name, d in diffs.items())
    return {"stable": within and not first_outlier, "first_outlier": first_outlier, **diffs}


def warmup_stable(window: Sequence[float], **tolerances: float) -> bool:
    """True when the warmup window passes :func:`warmup_stability` (same keyword tolerances)."""
    return bool(warmup_stability(window, **tolerances)["stable"])


# --- autocorrelation ---------------------------------------------------------------------------


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks with ties given their average rank."""
    n = len(values)
    order = sorted(range(n), key=values.__getitem__)
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    return ranks


def lag1_rank_autocorrelation(values_in_order: Sequence[float]) -> float | None:
    """Lag-1 serial correlation of the ranks of a series (None for n < 3 or a constant series).

    Ranks make it robust to heavy tails. Under independence it is about N(-1/n, 1/n).
    """
    n = len(values_in_order)
    if n < 3:
        return None
    ranks = _average_ranks(values_in_order)
    centre = (n + 1) / 2.0
    dev = [r - centre for r in ranks]
    denominator = math.fsum(d * d for d in dev)
    if denominator == 0:
        return None
    return math.fsum(dev[i] * dev[i + 1] for i in range(n - 1)) / denominator


def autocorrelation_threshold(n: int) -> float:
    """The lag-1 rank autocorrelation above which a series of n samples is `autocorrelated`."""
    return -1.0 / n + AUTOCORR_Z / math.sqrt(n)


def is_autocorrelated(values_in_order: Sequence[float]) -> tuple[bool, float | None]:
    """(flag, lag-1 rank autocorrelation): the one-sided 1% test of serial dependence."""
    r1 = lag1_rank_autocorrelation(values_in_order)
    if r1 is None or len(values_in_order) < AUTOCORR_MIN_N:
        return False, r1
    return r1 > autocorrelation_threshold(len(values_in_order)), r1


def indicator_vif(values_in_order: Sequence[float], cut: float, max_lag: int = AUTOCORR_MAX_LAG) -> float:
    """Variance inflation factor of the indicator 1{x <= cut}: 1 + 2 sum_k (1 - k/n) r_k, k = 1..max_lag.

    The variance of a sample quantile is that of the fraction of samples below it, so this is
    the factor by which serial dependence inflates it (floored at 1). Co-occurrence counts come
    from popcounts of a bit mask (one byte per sample), so this is cheap even for 1e5 samples.
    """
    n = len(values_in_order)
    if n < 3:
        return 1.0
    flags = bytes(1 if x <= cut else 0 for x in values_in_order)
    p = flags.count(1) / n
    if p <= 0.0 or p >= 1.0:
        return 1.0
    mask = int.from_bytes(flags, "little")
    variance = p * (1.0 - p)
    total = 0.0
    for k in range(1, min(max_lag, n - 2) + 1):
        both = (mask & (mask >> (8 * k))).bit_count()
        total += (1.0 - k / n) * (both / (n - k) - p * p) / variance
    return max(1.0, 1.0 + 2.0 * total)


# --- intervals ---------------------------------------------------------------------------------


def widened_quantile_ranks(n: int, q: float, conf: float, inflation: float) -> tuple[int, int] | None:
    """Exact ranks of the q-quantile CI, their distance from the estimate's rank scaled by sqrt(inflation).

    With inflation 1 these are :func:`quantile_ci_ranks`. None when the widened interval would
    need ranks outside 1..n: the data cannot support a claim at that confidence.
    """
    ranks = quantile_ci_ranks(n, q, conf)
    if ranks is None:
        return None
    if inflation <= 1.0:
        return ranks
    scale = math.sqrt(inflation)
    rank = nearest_rank_index(n, q) + 1
    lower = math.floor(rank - (rank - ranks[0]) * scale)
    upper = math.ceil(rank + (ranks[1] - rank) * scale)
    if lower < 1 or upper > n:
        return None
    return lower, upper


def within_run_interval(
    ordered: Sequence[float], q: float, conf: float, inflation: float = 1.0, resolution: float = 0.0
) -> tuple[float, float] | None:
    """The order-statistic interval of one run, widened for serial dependence and by +-resolution."""
    ranks = widened_quantile_ranks(len(ordered), q, conf, inflation)
    if ranks is None:
        return None
    return ordered[ranks[0] - 1] - resolution, ordered[ranks[1] - 1] + resolution


def t_interval_of_logs(
    values: Sequence[float], conf: float = 0.95, resolution: float = 0.0
) -> dict[str, float] | None:
    """Geometric mean and t-interval of positive per-run statistics, on the log scale.

    Returns estimate, lo, hi, log_mean, log_sd, df and rel_halfwidth (the log-scale
    half-width, about the relative half-width), or None for fewer than 2 values.
    """
    r = len(values)
    if r < 2 or any(v <= 0 for v in values):
        return None
    logs = [math.log(v) for v in values]
    mean = math.fsum(logs) / r
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in logs) / (r - 1))
    half = t_ppf(0.5 + conf / 2.0, r - 1) * sd / math.sqrt(r)
    estimate = math.exp(mean)
    return {
        "estimate": estimate,
        "lo": math.exp(mean - half) - resolution,
        "hi": math.exp(mean + half) + resolution,
        "log_mean": mean,
        "log_sd": sd,
        "df": float(r - 1),
        "rel_halfwidth": half + resolution / estimate,
    }


def required_runs_for(log_sd: float, epsilon: float, runs: int, cap: int = 1000) -> int:
    """Fewest runs R' >= 2 whose 95% t-interval half-width t(R'-1) * sd / sqrt(R') is <= epsilon."""
    if log_sd <= 0:
        return 2
    for r in range(2, cap + 1):
        if t_ppf(0.975, r - 1) * log_sd / math.sqrt(r) <= epsilon:
            return r
    return cap


# --- summary -----------------------------------------------------------------------------------

_PUBLISHED = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))
_DEFAULT_FLOORS: Mapping[str, int] = {"p50": MIN_SAMPLES_P50, "p95": MIN_SAMPLES_P95, "p99": MIN_SAMPLES_P99}
UNCONVERGED_STOPS = frozenset({"max_duration", "max_samples"})
"""Stop reasons of a run whose p95 interval never reached epsilon (`not_converged`)."""


def _modified_z(x: float, median: float, mad: float) -> float:
    return (x - median) / mad


STOPPED_BY_RULE_CONF = 0.99
"""A run ended by the stopping rule publishes the interval the rule checked (99% ranks): runs the
rule ends early are those whose interval looked narrow by chance, and their 95%-rank interval
covered only ~88% in simulation; the 99%-rank one covers ~96% (docs/MEASUREMENT.md, "Stopping")."""


def _single_run(
    per_iter: Sequence[float], limits: Mapping[str, int], resolution: float, stop_reason: str | None = None
) -> dict[str, Any]:
    """Quantiles, widened within-run intervals and serial-dependence figures of one run."""
    n = len(per_iter)
    ordered = sorted(per_iter)
    autocorrelated, r1 = is_autocorrelated(per_iter)
    quantiles: dict[str, float | None] = {}
    ci95: dict[str, list[float] | None] = {}
    vifs: dict[str, float] = {}
    for name, q in _PUBLISHED:
        if name == "p99" and n < limits["p99"]:
            quantiles[name], ci95[name] = None, None
            continue
        estimate = ordered[nearest_rank_index(n, q)]
        quantiles[name] = estimate
        # Widen only when the lag-1 test finds dependence: on independent data the exact
        # interval is right, and a noisy VIF estimate would only widen it at random.
        inflation = indicator_vif(per_iter, estimate) if autocorrelated else 1.0
        vifs[name] = inflation
        conf = STOPPED_BY_RULE_CONF if stop_reason == "converged" else 0.95
        ci = within_run_interval(ordered, q, conf, inflation, resolution)
        ci95[name] = None if ci is None else [ci[0], ci[1]]
    median = _median_sorted(ordered)
    mad_floored = max(_mad(ordered, median), resolution)
    first = per_iter[0]
    slow_initial = (
        n >= MIN_SAMPLES_P50
        and first > max(per_iter[1:])
        and _modified_z(first, median, mad_floored) > MODIFIED_Z_THRESHOLD
    )
    return {
        "n": n,
        **quantiles,
        "median": median,
        "ci95": ci95,
        "autocorrelation": {
            "lag1_rank": r1,
            "threshold": autocorrelation_threshold(n) if n >= AUTOCORR_MIN_N else None,
            "vif": vifs,
        },
        "autocorrelated": autocorrelated,
        "slow_initial": slow_initial,
    }


def summarize(
    samples_ns: Sequence[float],
    *,
    n_warmup: int = 0,
    loops: int = 1,
    duration_s: float | None = None,
    clock_resolution_ns: float = 1.0,
    run_ids: Sequence[int] | None = None,
    floors: Mapping[str, int] | None = None,
    want_p99: bool = True,
    epsilon: float = 0.02,
    stop_reasons: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The summary record of one cell (docs/MEASUREMENT.md, "The summary record"), JSON-serialisable.

    ``samples_ns`` are raw elapsed times of ``loops`` calls each, in measured order; every
    statistic is computed on elapsed / loops as floats (integer division biased micro-op
    figures). Samples are never dropped. Non-positive durations are rejected (ValueError).

    One run (``run_ids`` None or a single run): nearest-rank quantiles with exact
    order-statistic intervals, widened by sqrt(VIF) when the run is `autocorrelated`.
    Several runs: each run is summarised alone (``run_level.per_run``), the cell's p50/p90/
    p95/p99 are geometric means of the per-run values and ``ci95`` holds t-intervals on their
    logs (df = R - 1); the all-sample quantiles are kept in ``pooled`` for reference only.
    Every interval is widened by the per-call clock resolution on each side.

    Flags (docs/MEASUREMENT.md, "Flags"): ``autocorrelated``, ``slow_initial``,
    ``short_samples``, ``few_samples_p50`` / ``few_samples_p95`` / ``few_samples_p99`` (the
    smallest run below the floor; p99 only when ``want_p99``), ``need_more_runs`` (the p95
    run-level interval is wider than +-``epsilon``), ``not_converged`` (a run stopped at a
    ceiling, from ``stop_reasons``), ``no_samples``.
    """
    limits = {**_DEFAULT_FLOORS, **(floors or {})}
    n = len(samples_ns)
    if loops < 1:
        raise ValueError(f"loops must be >= 1, got {loops}")
    resolution = clock_resolution_ns / loops
    flags: list[str] = []
    notes: list[str] = []
    record: dict[str, Any] = {
        "n": n,
        "n_warmup": n_warmup,
        "loops": loops,
        "duration_s": duration_s,
        "quantile_method": "inverted_cdf",
        "resolution_ns": resolution,
    }
    if run_ids is not None and len(run_ids) != n:
        raise ValueError(f"run_ids has {len(run_ids)} entries for {n} samples")
    if stop_reasons is not None and any(reason in UNCONVERGED_STOPS for reason in stop_reasons):
        flags.append("not_converged")
        notes.append("a run stopped at a ceiling before its p95 interval reached epsilon")
    if n == 0:
        empty = dict.fromkeys(("min", "p50", "p90", "p95", "p99", "max", "mean", "stdev", "cv", "mad"))
        none_map = dict.fromkeys(("p50", "p90", "p95", "p99"))
        return {
            **record,
            **empty,
            "ci95": dict(none_map),
            "interval_method": None,
            "es": {"p90": None, "p95": None, "p99": None},
            "outliers_mad": 0,
            "outliers_iqr": 0,
            "flags": ["no_samples", *flags],
            "notes": ["no samples were measured", *notes],
        }
    if not all(math.isfinite(x) for x in samples_ns):
        raise ValueError("samples_ns contains a non-finite value")
    if any(x <= 0 for x in samples_ns):
        bad = next(x for x in samples_ns if x <= 0)
        raise ValueError(f"samples_ns must be positive durations, got {bad}")

    per_iter = [x / loops for x in samples_ns] if loops != 1 else [float(x) for x in samples_ns]
    ordered = sorted(per_iter)
    mean = math.fsum(ordered) / n
    stdev = math.sqrt(math.fsum((x - mean) ** 2 for x in ordered) / (n - 1)) if n > 1 else None
    cv = stdev / mean if stdev is not None and mean > 0 else None
    median = _median_sorted(ordered)
    mad = _mad(ordered, median)
    record.update(min=ordered[0], max=ordered[-1], mean=mean, stdev=stdev, cv=cv, mad=mad)

    by_run: dict[int, list[float]] = {}
    if run_ids is not None:
        for run, x in zip(run_ids, per_iter, strict=True):
            by_run.setdefault(run, []).append(x)
    runs = sorted(by_run) if by_run else [0]
    reasons: list[str | None] = [None] * len(runs)
    if stop_reasons is not None and len(stop_reasons) == len(runs):
        reasons = list(stop_reasons)
    per_run = (
        [_single_run(by_run[r], limits, resolution, reasons[i]) for i, r in enumerate(runs)] if by_run else []
    )
    if len(runs) >= 2:
        _publish_run_level(record, per_run, runs, limits, resolution, epsilon, flags, notes)
        smallest_run = min(p["n"] for p in per_run)
        autocorrelated = any(p["autocorrelated"] for p in per_run)
        slow_initial = any(p["slow_initial"] for p in per_run)
        record["pooled"] = {
            name: ordered[nearest_rank_index(n, q)] if name != "p99" or n >= limits["p99"] else None
            for name, q in _PUBLISHED
        }
    else:
        single = per_run[0] if per_run else _single_run(per_iter, limits, resolution, reasons[0])
        for name, _ in _PUBLISHED:
            record[name] = single[name]
        record["ci95"] = single["ci95"]
        record["autocorrelation"] = single["autocorrelation"]
        record["interval_method"] = "order_statistic"
        smallest_run = n
        autocorrelated = single["autocorrelated"]
        slow_initial = single["slow_initial"]
        if run_ids is not None:
            record.update(runs=runs, run_medians=[median], run_cv=None, required_runs=None)
    if record["p99"] is None:
        notes.append(f"p99 not published: n={smallest_run} < {limits['p99']} samples needed per run")
    record["es"] = {name: early_stopping_estimate(ordered, q) for name, q in _PUBLISHED if name != "p50"}

    # Outliers: counted, never removed. The MAD is floored at the clock resolution: a MAD of 0
    # (ties on a coarse clock) would make a 1-tick difference an "outlier".
    mad_floored = max(mad, resolution)
    record["outliers_mad"] = sum(
        1 for x in ordered if abs(_modified_z(x, median, mad_floored)) > MODIFIED_Z_THRESHOLD
    )
    q1, q3 = _linear_percentile(ordered, 0.25), _linear_percentile(ordered, 0.75)
    low_fence, high_fence = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    record["outliers_iqr"] = sum(1 for x in ordered if x < low_fence or x > high_fence)

    if autocorrelated:
        flags.append("autocorrelated")
    if ordered[0] * loops < SHORT_SAMPLE_FACTOR * clock_resolution_ns:
        flags.append("short_samples")
    if slow_initial:
        flags.append("slow_initial")
    if smallest_run < limits["p50"]:
        flags.append("few_samples_p50")
    if smallest_run < limits["p95"]:
        flags.append("few_samples_p95")
        notes.append(f"p95 has n={smallest_run} < {limits['p95']} samples per run (the p95 floor)")
    if want_p99 and smallest_run < limits["p99"]:
        flags.append("few_samples_p99")
    record["flags"] = flags
    record["notes"] = notes
    return record


def _publish_run_level(
    record: dict[str, Any],
    per_run: list[dict[str, Any]],
    runs: list[int],
    limits: Mapping[str, int],
    resolution: float,
    epsilon: float,
    flags: list[str],
    notes: list[str],
) -> None:
    """The cell's estimates and intervals from its independent runs (the unit of replication)."""
    ci95: dict[str, list[float] | None] = {}
    level: dict[str, Any] = {"n_runs": len(runs), "conf": 0.95, "per_run": per_run}
    for name, _ in _PUBLISHED:
        values = [p[name] for p in per_run]
        if any(v is None for v in values):
            record[name], ci95[name] = None, None
            continue
        interval = t_interval_of_logs(values, 0.95, resolution)
        assert interval is not None  # >= 2 runs of positive values
        record[name] = interval["estimate"]
        ci95[name] = [interval["lo"], interval["hi"]]
        level[name] = {"values": values, **interval}
    record["ci95"] = ci95
    record["interval_method"] = "t_log_runs"
    record["run_level"] = level
    medians = [p["median"] for p in per_run]
    mean_median = math.fsum(medians) / len(medians)
    record["runs"] = runs
    record["run_medians"] = medians
    record["run_cv"] = statistics.stdev(medians) / mean_median if mean_median > 0 else None
    p95_level = level.get("p95")
    if isinstance(p95_level, dict):
        required = required_runs_for(p95_level["log_sd"], epsilon, len(runs))
        record["required_runs"] = required
        if p95_level["rel_halfwidth"] > epsilon:
            flags.append("need_more_runs")
            notes.append(
                f"p95 run-level interval is +-{100 * p95_level['rel_halfwidth']:.1f}% (target "
                f"+-{100 * epsilon:g}%): about {required} runs would reach it"
            )
    else:
        record["required_runs"] = None


def cell_summary(
    elapsed_ns: Sequence[float],
    run_ids: Sequence[int],
    per_run: Sequence[Mapping[str, Any]],
    *,
    loops: int,
    micro: bool,
    clock_resolution_ns: float,
    want_p99: bool,
    epsilon: float,
) -> dict[str, Any]:
    """:func:`summarize` of a cell's pooled raw samples, as the agent publishes it.

    ``per_run`` are the workers' run records (n_warmup, duration_s, stop_reason). Invalid
    samples (non-positive, non-finite) give a summary without figures, flagged
    ``invalid_samples``, instead of an exception: the cell still reports. Micro-op cells
    publish no p99 (batching averages the tail away).
    """
    try:
        summary = summarize(
            elapsed_ns,
            n_warmup=sum(int(p.get("n_warmup", 0)) for p in per_run),
            loops=loops,
            duration_s=sum(float(p.get("duration_s", 0.0)) for p in per_run),
            clock_resolution_ns=clock_resolution_ns,
            run_ids=run_ids,
            want_p99=want_p99 and not micro,
            epsilon=epsilon,
            stop_reasons=[str(p.get("stop_reason") or "") for p in per_run],
        )
    except ValueError as exc:
        figures = dict.fromkeys(("min", "p50", "p90", "p95", "p99", "max", "mean", "stdev", "cv", "mad"))
        return {
            "n": len(elapsed_ns),
            "loops": loops,
            **figures,
            "ci95": dict.fromkeys(("p50", "p90", "p95", "p99")),
            "interval_method": None,
            "es": {"p90": None, "p95": None, "p99": None},
            "flags": ["invalid_samples"],
            "notes": [f"samples rejected: {exc}"],
        }
    if micro:
        summary["p99"] = None
        summary["ci95"]["p99"] = None
        summary["es"]["p99"] = None
        if isinstance(summary.get("pooled"), dict):
            summary["pooled"]["p99"] = None
        if isinstance(summary.get("run_level"), dict):
            summary["run_level"].pop("p99", None)
            for run in summary["run_level"]["per_run"]:
                run["p99"] = None
                run["ci95"]["p99"] = None
        summary.setdefault("notes", []).append("p99 not reported in micro-op mode")
    return summary


SAMPLE_FLAGS = frozenset(
    {
        "autocorrelated",
        "slow_initial",
        "short_samples",
        "few_samples_p50",
        "few_samples_p95",
        "few_samples_p99",
        "need_more_runs",
        "not_converged",
        "no_samples",
        "invalid_samples",
        "thermal_drift",
    }
)
"""The flags :func:`cell_figures` derives from the samples (the rest come from conditions)."""

RUN_LINE_KEYS = (
    "run",
    "pid",
    "n",
    "n_warmup",
    "warmup_converged",
    "p50",
    "p95",
    "duration_s",
    "stop_reason",
    "cold_start",
    "first_load_on_host",
    "memory_peak_bytes",
    "loops",
    "sustained_n",
)


def run_line(record: Mapping[str, Any]) -> dict[str, Any]:
    """The per-run line of a summary (no raw data, no conditions detail beyond pressure).

    ``thermal`` is the run's pressure before and after, from ``conditions``; a record without
    ``conditions`` (a stored line being re-summarised) keeps its own ``thermal``.
    """
    small = {k: record.get(k) for k in RUN_LINE_KEYS}
    conditions = record.get("conditions")
    if conditions is None and "thermal" in record:
        small["thermal"] = record["thermal"]
        return small
    conditions = conditions if isinstance(conditions, Mapping) else {}
    small["thermal"] = [
        (conditions.get("before") or {}).get("thermal_pressure"),
        (conditions.get("after") or {}).get("thermal_pressure"),
    ]
    return small


def cell_figures(
    elapsed_ns: Sequence[float],
    run_ids: Sequence[int],
    per_run: Sequence[Mapping[str, Any]],
    *,
    mode: str,
    loops: int,
    clock_resolution_ns: float,
    want_p99: bool,
    epsilon: float,
) -> dict[str, Any]:
    """Everything of a cell's summary that follows from its samples: the one implementation the
    agent publishes (runner.JobRunner.cell_summary) and a bundle's verification recomputes.

    ``elapsed_ns`` are the pooled raw measure-phase samples (ns of ``loops`` calls) in arrival
    order with their run index; ``per_run`` the run records (n_warmup, duration_s, stop_reason,
    the per-run p50 / p95, and ``drift`` on the sustained run). Adds ``mode``, the merged
    ``per_run`` lines, ``burst`` / ``sustained`` / ``drift`` and the ``thermal_drift`` flag to
    :func:`cell_summary`.
    """
    summary = cell_summary(
        elapsed_ns,
        run_ids,
        per_run,
        loops=loops,
        micro=mode == "micro",
        clock_resolution_ns=clock_resolution_ns,
        want_p99=want_p99,
        epsilon=epsilon,
    )
    flags: list[str] = list(summary.get("flags", []))
    sustained_run = next((p for p in per_run if p.get("drift") is not None), None)
    drift = sustained_run.get("drift") if sustained_run else None
    if drift and drift.get("flag"):
        flags.append("thermal_drift")
    summary.update(
        mode=mode,
        per_run=merge_run_details([run_line(p) for p in per_run], summary),
        burst=drift.get("burst") if drift else None,
        sustained=drift.get("sustained") if drift else None,
        drift=drift,
        flags=flags,
    )
    return summary


def merge_run_details(runs: Sequence[dict[str, Any]], summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each run's line with its within-run figures from ``summary`` (matched by run index).

    Adds ``p90``, ``p99``, ``ci95`` (the within-run interval), ``autocorrelated`` and
    ``autocorrelation``; a single-run cell's within-run figures are the cell's own.
    """
    level = summary.get("run_level")
    details: dict[Any, Mapping[str, Any]] = {}
    if isinstance(level, Mapping):
        details = dict(zip(summary.get("runs", []), level.get("per_run", []), strict=False))
    elif len(runs) == 1 and summary.get("interval_method") == "order_statistic":
        details = {runs[0].get("run"): {**summary, "autocorrelated": "autocorrelated" in summary["flags"]}}
    merged = []
    for line in runs:
        detail = details.get(line.get("run"))
        if detail is None:
            merged.append(dict(line))
            continue
        merged.append(
            {
                **line,
                "p90": detail.get("p90"),
                "p99": detail.get("p99"),
                "ci95": detail.get("ci95"),
                "autocorrelated": bool(detail.get("autocorrelated")),
                "autocorrelation": detail.get("autocorrelation"),
            }
        )
    return merged


# --- two-sample tests --------------------------------------------------------------------------


def _normal_two_sided_p(z: float) -> float:
    return min(1.0, math.erfc(abs(z) / math.sqrt(2.0)))


def mann_whitney_u(
    a: Sequence[float], b: Sequence[float], *, use_continuity: bool = True
) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test: (U of ``a``, p) by the normal approximation.

    Ties get average ranks and the tie-corrected variance; with the continuity correction
    this equals scipy.stats.mannwhitneyu(a, b, method="asymptotic"). O(n log n).
    """
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("mann_whitney_u needs two non-empty samples")
    pooled = [*a, *b]
    total = n1 + n2
    order = sorted(range(total), key=pooled.__getitem__)
    rank_sum_a = 0.0
    tie_term = 0.0
    i = 0
    while i < total:
        j = i
        value = pooled[order[i]]
        while j + 1 < total and pooled[order[j + 1]] == value:
            j += 1
        avg_rank = (i + j) / 2.0 + 1.0
        ties = j - i + 1
        tie_term += ties**3 - ties
        rank_sum_a += avg_rank * sum(1 for k in range(i, j + 1) if order[k] < n1)
        i = j + 1
    u1 = rank_sum_a - n1 * (n1 + 1) / 2.0
    u = max(u1, n1 * n2 - u1)
    sd = math.sqrt(n1 * n2 / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))) if total > 1 else 0.0
    if sd == 0:
        return u1, 1.0
    # u >= the mean by construction; the correction must never push the distance below 0.
    numerator = max(0.0, u - n1 * n2 / 2.0 - (0.5 if use_continuity else 0.0))
    return u1, _normal_two_sided_p(numerator / sd)


def _dense_ranks(values: Sequence[float]) -> list[int]:
    index = {v: i for i, v in enumerate(sorted(set(values)))}
    return [index[v] for v in values]


def _tie_stats(ranks: Sequence[int]) -> tuple[int, float, float]:
    counts: dict[int, int] = {}
    for r in ranks:
        counts[r] = counts.get(r, 0) + 1
    pairs = sum(c * (c - 1) // 2 for c in counts.values() if c > 1)
    v0 = float(sum(c * (c - 1) * (c - 2) for c in counts.values() if c > 1))
    v1 = float(sum(c * (c - 1) * (2 * c + 5) for c in counts.values() if c > 1))
    return pairs, v0, v1


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall tau-b and its two-sided p-value (normal approximation with tie terms).

    Equals scipy.stats.kendalltau(x, y, method="asymptotic"). O(n log n): discordant pairs
    are counted with a Fenwick tree. Returns (nan, nan) when x or y is constant. Callers with
    very long series should downsample first (drift() uses <= 2000 block medians).
    """
    n = len(x)
    if n != len(y):
        raise ValueError(f"kendall_tau needs equal lengths, got {n} and {len(y)}")
    if n < 2:
        raise ValueError("kendall_tau needs at least 2 points")
    rx, ry = _dense_ranks(x), _dense_ranks(y)
    order = sorted(range(n), key=lambda i: (rx[i], ry[i]))
    ys = [ry[i] for i in order]
    # Discordant pairs = strict inversions of y after sorting by (x, y).
    size = max(ys) + 1
    tree = [0] * (size + 1)
    discordant = 0
    for seen, yv in enumerate(ys):
        not_greater = 0
        i = yv + 1
        while i > 0:
            not_greater += tree[i]
            i -= i & -i
        discordant += seen - not_greater
        i = yv + 1
        while i <= size:
            tree[i] += 1
            i += i & -i
    joint: dict[tuple[int, int], int] = {}
    for pair in zip(rx, ry, strict=True):
        joint[pair] = joint.get(pair, 0) + 1
    joint_ties = sum(c * (c - 1) // 2 for c in joint.values())
    x_ties, x0, x1 = _tie_stats(rx)
    y_ties, y0, y1 = _tie_stats(ry)
    total = n * (n - 1) // 2
    if x_ties == total or y_ties == total:
        return math.nan, math.nan
    con_minus_dis = total - x_ties - y_ties + joint_ties - 2 * discordant
    tau = con_minus_dis / math.sqrt(total - x_ties) / math.sqrt(total - y_ties)
    tau = max(-1.0, min(1.0, tau))
    m = n * (n - 1.0)
    var = (m * (2 * n + 5) - x1 - y1) / 18.0 + 2.0 * x_ties * y_ties / m
    if n > 2:
        var += x0 * y0 / (9.0 * m * (n - 2))
    p = _normal_two_sided_p(con_minus_dis / math.sqrt(var)) if var > 0 else 1.0
    return tau, p


# --- bootstrap and drift -----------------------------------------------------------------------


def _index_of_uniform(u: float, m: int) -> int:
    return min(m - 1, int(u * m))


def _bootstrap_median(sorted_x: Sequence[float], rng: random.Random) -> float:
    """The median of one bootstrap resample of ``sorted_x``, drawn exactly in O(1).

    The k-th smallest of m uniform draws from {0..m-1} is floor(m * U_(k)) with
    U_(k) ~ Beta(k, m-k+1); given U_(k) = u, the next one is u + (1-u) * Beta(1, m-k).
    This has the same distribution as statistics.median(rng.choices(x, k=m)).
    """
    m = len(sorted_x)
    k = (m + 1) // 2
    u = rng.betavariate(k, m - k + 1)
    if m % 2:
        return float(sorted_x[_index_of_uniform(u, m)])
    v = u + (1.0 - u) * rng.betavariate(1, m - k)
    return (sorted_x[_index_of_uniform(u, m)] + sorted_x[_index_of_uniform(v, m)]) / 2.0


def bootstrap_ratio_ci(
    a: Sequence[float],
    b: Sequence[float],
    stat: Callable[[Sequence[float]], float] = statistics.median,
    n_resamples: int = 2000,
    conf: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(stat(b) / stat(a), lo, hi): a seeded percentile bootstrap CI of the ratio.

    Each resample draws len(a) values from ``a`` and len(b) from ``b`` with replacement.
    For ``statistics.median`` (the default) the resampled medians are drawn exactly from
    their order-statistic distribution (see _bootstrap_median), so the cost does not depend
    on the sample sizes; any other ``stat`` resamples explicitly (O(n) per resample).
    Deterministic for a given seed.
    """
    if not a or not b:
        raise ValueError("bootstrap_ratio_ci needs two non-empty samples")
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {conf}")
    base = stat(a)
    if base == 0:
        raise ValueError("stat(a) is 0: the ratio is undefined")
    ratio = stat(b) / base
    rng = random.Random(seed)
    ratios: list[float] = []
    if stat is statistics.median:
        sorted_a, sorted_b = sorted(a), sorted(b)
        for _ in range(n_resamples):
            ma = _bootstrap_median(sorted_a, rng)
            mb = _bootstrap_median(sorted_b, rng)
            if ma != 0:
                ratios.append(mb / ma)
    else:
        for _ in range(n_resamples):
            ma = stat(rng.choices(a, k=len(a)))
            mb = stat(rng.choices(b, k=len(b)))
            if ma != 0:
                ratios.append(mb / ma)
    if not ratios:
        raise ValueError("every resample of a had stat 0: the ratio is undefined")
    ratios.sort()
    alpha = 1.0 - conf
    return ratio, _linear_percentile(ratios, alpha / 2.0), _linear_percentile(ratios, 1.0 - alpha / 2.0)


def _lite(values: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {"n": len(ordered), "p50": nearest_rank(ordered, 0.5), "p95": nearest_rank(ordered, 0.95)}


def _trend_series(
    samples_ns: Sequence[float], t_ns: Sequence[float] | None, max_points: int
) -> tuple[list[float], list[float]]:
    """(x, block median) pairs: 1-second bins when timestamps exist, else blocks of samples.

    Bins (or blocks) widen so that there are at most ``max_points``; without timestamps a block
    holds at least 5 samples when there are 50+, so single tail samples cannot dominate.
    """
    n = len(samples_ns)
    if t_ns is not None:
        start = t_ns[0]
        width = max(1e9, (t_ns[-1] - start) / max_points)
        bins: dict[int, list[float]] = {}
        for t, x in zip(t_ns, samples_ns, strict=True):
            bins.setdefault(int((t - start) // width), []).append(x)
        keys = sorted(bins)
        return [float(k) for k in keys], [statistics.median(bins[k]) for k in keys]
    block = max(1, min(5, n // 10), math.ceil(n / max_points))
    medians = [statistics.median(samples_ns[i : i + block]) for i in range(0, n, block)]
    return [float(i) for i in range(len(medians))], medians


def _final_window(
    values: Sequence[float], t_ns: Sequence[float] | None, fraction: float
) -> tuple[list[float], float | None]:
    """The last ``fraction`` of a phase (by time when ``t_ns`` is given) and its span in seconds."""
    if t_ns is not None and values:
        cut = t_ns[-1] - fraction * (t_ns[-1] - t_ns[0])
        window = [x for t, x in zip(t_ns, values, strict=True) if t >= cut]
        return window, (t_ns[-1] - cut) / 1e9
    width = int(len(values) * fraction)
    return list(values[len(values) - width :]), None


def _dependence_scale(values_in_order: Sequence[float]) -> float:
    """sqrt(VIF) of the median indicator when the series is autocorrelated, else 1."""
    autocorrelated, _ = is_autocorrelated(values_in_order)
    if not autocorrelated:
        return 1.0
    return math.sqrt(indicator_vif(values_in_order, statistics.median(values_in_order)))


def drift(
    burst_ns: Sequence[float],
    sustained_ns: Sequence[float],
    *,
    sustained_t_ns: Sequence[float] | None = None,
    final_fraction: float = SUSTAINED_FINAL_FRACTION,
    seed: int = 0,
    n_resamples: int = 2000,
    max_trend_points: int = 2000,
) -> dict[str, Any]:
    """Burst vs sustained drift of one run (docs/MEASUREMENT.md, "Drift").

    burst = the measured phase (``burst_ns``, per-call times in measured order); sustained =
    the final ``final_fraction`` of the sustained phase, by time when ``sustained_t_ns`` is
    given. ``ratio`` = median(sustained) / median(burst) with a seeded bootstrap ``ci95``
    whose two medians' deviations are each widened by sqrt(VIF) when that window is
    autocorrelated; ``mw_p`` is the Mann-Whitney p of burst vs sustained; ``kendall_tau`` /
    ``kendall_p`` test a trend over the whole sustained phase (block medians). ``flag``
    (thermal_drift): the CI excludes 1 and |ratio - 1| >= 3%; ``trend_flag``: tau > 0.2 and
    p < 0.01. Windows under 5 samples give None figures and a ``reason``.
    """
    if not 0.0 < final_fraction <= 1.0:
        raise ValueError(f"final_fraction must be in (0, 1], got {final_fraction}")
    n_sustained = len(sustained_ns)
    if sustained_t_ns is not None:
        if len(sustained_t_ns) != n_sustained:
            raise ValueError(f"sustained_t_ns has {len(sustained_t_ns)} entries for {n_sustained} samples")
        if any(sustained_t_ns[i] > sustained_t_ns[i + 1] for i in range(n_sustained - 1)):
            raise ValueError("sustained_t_ns must be non-decreasing")
    result: dict[str, Any] = {
        "method": "burst_vs_final_window",
        "final_fraction": final_fraction,
        "n_burst_phase": len(burst_ns),
        "n_sustained_phase": n_sustained,
        "window_s": None,
        "burst": None,
        "sustained": None,
        "ratio": None,
        "ci95": None,
        "dependence_scale": None,
        "mw_p": None,
        "kendall_tau": None,
        "kendall_p": None,
        "trend_points": 0,
        "flag": False,
        "trend_flag": False,
        "flags": [],
    }
    window, window_s = _final_window(sustained_ns, sustained_t_ns, final_fraction)
    result["window_s"] = window_s
    burst = list(burst_ns)
    if len(burst) < DRIFT_MIN_WINDOW or len(window) < DRIFT_MIN_WINDOW:
        result["reason"] = (
            f"windows need >= {DRIFT_MIN_WINDOW} samples each (got {len(burst)}, {len(window)})"
        )
        return result
    if any(x <= 0 for x in burst) or any(x <= 0 for x in window):
        raise ValueError("drift needs positive durations")
    sorted_b, sorted_w = sorted(burst), sorted(window)
    med_b, med_w = statistics.median(sorted_b), statistics.median(sorted_w)
    ratio = med_w / med_b
    scale_b, scale_w = _dependence_scale(burst), _dependence_scale(window)
    log_b, log_w, log_ratio = math.log(med_b), math.log(med_w), math.log(ratio)
    rng = random.Random(seed)
    ratios = []
    for _ in range(n_resamples):
        dev_b = math.log(_bootstrap_median(sorted_b, rng)) - log_b
        dev_w = math.log(_bootstrap_median(sorted_w, rng)) - log_w
        ratios.append(math.exp(log_ratio + scale_w * dev_w - scale_b * dev_b))
    ratios.sort()
    lo, hi = _linear_percentile(ratios, 0.025), _linear_percentile(ratios, 0.975)
    _, mw_p = mann_whitney_u(burst, window)
    result.update(
        burst=_lite(burst),
        sustained=_lite(window),
        ratio=ratio,
        ci95=[lo, hi],
        dependence_scale={"burst": scale_b, "sustained": scale_w},
        mw_p=mw_p,
    )
    result["flag"] = (lo > 1.0 or hi < 1.0) and abs(ratio - 1.0) >= DRIFT_MIN_EFFECT
    if n_sustained >= 3:
        xs, medians = _trend_series(sustained_ns, sustained_t_ns, max_trend_points)
        result["trend_points"] = len(medians)
        if len(medians) >= 3:
            tau, p = kendall_tau(xs, medians)
            if not math.isnan(tau):
                result["kendall_tau"], result["kendall_p"] = tau, p
                result["trend_flag"] = tau > TREND_TAU and p < TREND_P
    result["flags"] = [
        name for name, on in (("thermal_drift", result["flag"]), ("trend", result["trend_flag"])) if on
    ]
    return result
