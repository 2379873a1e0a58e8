"""Statistics for benchmark samples, in pure stdlib (the agent runs on bare nodes).

Everything here follows docs MEASUREMENT.md section 2.6:

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

# --- named constants ---------------------------------------------------------------------------

#: Count floors before a percentile is published (MEASUREMENT 2.6(4)); p95 and p99 are the
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

CV_HIGH = 0.10  # pyperf: stdev >= 10% of the mean
MAX_FAR_FACTOR = 1.5  # pyperf: max >= 50% above the mean
SHORT_SAMPLE_FACTOR = 1000  # pyperf warns below 1 ms; we use 1000 x the clock resolution
DRIFT_MIN_EFFECT = 0.03  # thermal_drift needs |ratio - 1| >= 3%
TREND_TAU = 0.2
TREND_P = 0.01
DRIFT_MIN_WINDOW = 5  # samples per window below which drift is not computed

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

    Distribution-free (continuous i.i.d. samples), equal-tailed, as MEASUREMENT 2.6(4):
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


def relative_halfwidth(sorted_ns: Sequence[float], q: float = 0.95, conf: float = 0.99) -> float | None:
    """(x_(u) - x_(l)) / (2 * Q_q) for the ``conf`` CI of the q-quantile, or None if no CI exists."""
    ci = quantile_ci(sorted_ns, q, conf)
    if ci is None:
        return None
    estimate = nearest_rank(sorted_ns, q)
    if estimate <= 0:
        return None
    return (ci[1] - ci[0]) / (2.0 * estimate)


def p95_ci_converged(sorted_ns: Sequence[float], epsilon: float, conf: float = 0.99) -> bool:
    """The adaptive stopping rule of MEASUREMENT 2.6(4): the p95 CI's relative half-width <= epsilon.

    Uses 99% ranks by default so that repeated looks (every K samples) do not erode the
    coverage of the published 95% CI. False while no CI exists.
    """
    width = relative_halfwidth(sorted_ns, 0.95, conf)
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
    """The pyperf-style warmup check of MEASUREMENT 2.6(3), with every figure it used.

    The window (normally 2 x WARMUP_SAMPLE_SIZE = 40 samples, in measured order) is split
    into halves; relative differences are (first - second) / second. Stable when the first
    sample is not above Q3 + 1.5*IQR of the other samples (pyperf checks only the maximum),
    the halves' medians differ by <= 5%, their Q1 and Q3 each by <= 5% and their MADs by
    <= 10%. (MEASUREMENT uses medians where pyperf checks means within [-50%, +10%].)

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


# --- summary -----------------------------------------------------------------------------------

_PUBLISHED = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))
_DEFAULT_FLOORS: Mapping[str, int] = {"p50": MIN_SAMPLES_P50, "p95": MIN_SAMPLES_P95, "p99": MIN_SAMPLES_P99}


def _modified_z_scale(mad: float) -> float:
    # hyperfine: MAD == 0 is replaced by machine epsilon, so any deviation is an outlier.
    return mad if mad > 0 else 2.220446049250313e-16


def summarize(
    samples_ns: Sequence[float],
    *,
    n_warmup: int = 0,
    loops: int = 1,
    duration_s: float | None = None,
    clock_resolution_ns: float = 1.0,
    run_ids: Sequence[int] | None = None,
    floors: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The per-bucket summary record of MEASUREMENT 2.6(5)-(6) and (8), JSON-serialisable.

    ``samples_ns`` are per-iteration times in measured order (raw elapsed / ``loops``); they
    are never dropped. Quantiles are nearest-rank (``inverted_cdf``); ``ci95`` holds exact
    order-statistic intervals ([lo, hi], None while n is too small); ``es`` holds MLPerf
    early-stopping estimates (None below h(1)+1). p99 (and its CI) is None below the p99
    floor, with a note; p50/p95 are published below their floors but flagged
    ``few_samples_p50`` / ``few_samples_p95``. ``floors`` overrides the defaults (keys p50,
    p95, p99), e.g. for test-sized runs.

    Flags: ``cv_high`` (cv >= 10%), ``max_far`` (max >= 1.5 x mean), ``short_samples`` (min x
    loops < 1000 x clock resolution), ``slow_initial`` (hyperfine modified z of the first
    sample > 14.826), ``few_samples_*``, ``need_more_runs`` (pyperf's required run count,
    from the CV of per-run medians, exceeds the runs given), ``no_samples``.
    """
    limits = {**_DEFAULT_FLOORS, **(floors or {})}
    n = len(samples_ns)
    flags: list[str] = []
    notes: list[str] = []
    record: dict[str, Any] = {
        "n": n,
        "n_warmup": n_warmup,
        "loops": loops,
        "duration_s": duration_s,
        "quantile_method": "inverted_cdf",
    }
    if run_ids is not None and len(run_ids) != n:
        raise ValueError(f"run_ids has {len(run_ids)} entries for {n} samples")
    if n == 0:
        empty = dict.fromkeys(("min", "p50", "p90", "p95", "p99", "max", "mean", "stdev", "cv", "mad"))
        none_map = dict.fromkeys(("p50", "p90", "p95", "p99"))
        return {
            **record,
            **empty,
            "ci95": dict(none_map),
            "es": {"p90": None, "p95": None, "p99": None},
            "outliers_mad": 0,
            "outliers_iqr": 0,
            "flags": ["no_samples"],
            "notes": ["no samples were measured"],
        }
    if not all(math.isfinite(x) for x in samples_ns):
        raise ValueError("samples_ns contains a non-finite value")

    ordered = sorted(samples_ns)
    mean = math.fsum(ordered) / n
    stdev = math.sqrt(math.fsum((x - mean) ** 2 for x in ordered) / (n - 1)) if n > 1 else None
    cv = stdev / mean if stdev is not None and mean > 0 else None
    median = _median_sorted(ordered)
    mad = _mad(ordered, median)
    record.update(min=ordered[0], max=ordered[-1], mean=mean, stdev=stdev, cv=cv, mad=mad)

    ci95: dict[str, list[float] | None] = {}
    for name, q in _PUBLISHED:
        if name == "p99" and n < limits["p99"]:
            record[name] = None
            ci95[name] = None
            notes.append(f"p99 not published: n={n} < {limits['p99']} samples needed")
            continue
        record[name] = ordered[nearest_rank_index(n, q)]
        ci = quantile_ci(ordered, q, 0.95)
        ci95[name] = None if ci is None else [ci[0], ci[1]]
    record["ci95"] = ci95
    record["es"] = {name: early_stopping_estimate(ordered, q) for name, q in _PUBLISHED if name != "p50"}

    # Outliers: counted, never removed.
    scale = _modified_z_scale(mad)
    record["outliers_mad"] = sum(1 for x in ordered if abs(x - median) / scale > MODIFIED_Z_THRESHOLD)
    q1, q3 = _linear_percentile(ordered, 0.25), _linear_percentile(ordered, 0.75)
    low_fence, high_fence = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    record["outliers_iqr"] = sum(1 for x in ordered if x < low_fence or x > high_fence)

    if cv is not None and cv >= CV_HIGH:
        flags.append("cv_high")
    if ordered[-1] >= MAX_FAR_FACTOR * mean:
        flags.append("max_far")
    if ordered[0] * loops < SHORT_SAMPLE_FACTOR * clock_resolution_ns:
        flags.append("short_samples")
    if (samples_ns[0] - median) / scale > MODIFIED_Z_THRESHOLD:
        flags.append("slow_initial")
    if n < limits["p50"]:
        flags.append("few_samples_p50")
    if n < limits["p95"]:
        flags.append("few_samples_p95")
        notes.append(f"p95 has n={n} < {limits['p95']} samples (MLPerf early-stopping minimum)")
    if n < limits["p99"]:
        flags.append("few_samples_p99")

    if run_ids is not None:
        record.update(_run_level(samples_ns, run_ids))
        if record["required_runs"] is not None and record["required_runs"] > len(record["runs"]):
            flags.append("need_more_runs")
    record["flags"] = flags
    record["notes"] = notes
    return record


def _run_level(samples_ns: Sequence[float], run_ids: Sequence[int]) -> dict[str, Any]:
    """Per-run medians, their CV and pyperf's required_nprocesses = ceil(4 Z^2 cv^2 / W^2)."""
    by_run: dict[int, list[float]] = {}
    for run, x in zip(run_ids, samples_ns, strict=True):
        by_run.setdefault(run, []).append(x)
    runs = sorted(by_run)
    medians = [statistics.median(by_run[r]) for r in runs]
    run_cv: float | None = None
    required: int | None = None
    if len(medians) >= 2:
        mean = math.fsum(medians) / len(medians)
        if mean > 0:
            run_cv = statistics.stdev(medians) / mean
            required = math.ceil(4 * 1.96**2 * run_cv**2 / 0.01**2)
    return {"runs": runs, "run_medians": medians, "run_cv": run_cv, "required_runs": required}


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
    numerator = u - n1 * n2 / 2.0 - (0.5 if use_continuity else 0.0)
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


def drift(
    samples_ns: Sequence[float],
    *,
    window_fraction: float = 0.2,
    seed: int = 0,
    t_ns: Sequence[float] | None = None,
    n_resamples: int = 2000,
    max_trend_points: int = 2000,
) -> dict[str, Any]:
    """Burst-vs-sustained drift and trend of one sustained run (MEASUREMENT 2.6(7)).

    W1 / W5 are the first and last ``window_fraction`` of the run: by time when ``t_ns``
    (sample timestamps, non-decreasing) is given, else by sample index. Reports ``burst`` and
    ``sustained`` (n, p50, p95), ``ratio`` = median(W5) / median(W1) with a seeded bootstrap
    ``ci95``, the Mann-Whitney ``mw_p`` of W1 vs W5, and Kendall ``kendall_tau`` /
    ``kendall_p`` between time and the block-median series (see _trend_series).
    ``flag`` (thermal_drift): the CI excludes 1 and |ratio - 1| >= 3%. ``trend_flag``:
    tau > 0.2 and p < 0.01 (slowing down only). Windows under 5 samples give None figures.
    """
    n = len(samples_ns)
    if not 0.0 < window_fraction <= 0.5:
        raise ValueError(f"window_fraction must be in (0, 0.5], got {window_fraction}")
    if t_ns is not None:
        if len(t_ns) != n:
            raise ValueError(f"t_ns has {len(t_ns)} entries for {n} samples")
        if any(t_ns[i] > t_ns[i + 1] for i in range(n - 1)):
            raise ValueError("t_ns must be non-decreasing")
    result: dict[str, Any] = {
        "n": n,
        "window_fraction": window_fraction,
        "burst": None,
        "sustained": None,
        "ratio": None,
        "ci95": None,
        "mw_p": None,
        "kendall_tau": None,
        "kendall_p": None,
        "trend_points": 0,
        "flag": False,
        "trend_flag": False,
        "flags": [],
    }
    if t_ns is not None and n:
        span = t_ns[-1] - t_ns[0]
        first = [x for t, x in zip(t_ns, samples_ns, strict=True) if t <= t_ns[0] + window_fraction * span]
        last = [x for t, x in zip(t_ns, samples_ns, strict=True) if t >= t_ns[-1] - window_fraction * span]
    else:
        width = int(n * window_fraction)
        first, last = list(samples_ns[:width]), list(samples_ns[n - width :])
    if len(first) < DRIFT_MIN_WINDOW or len(last) < DRIFT_MIN_WINDOW:
        result["reason"] = f"windows need >= {DRIFT_MIN_WINDOW} samples each (got {len(first)}, {len(last)})"
        return result
    ratio, lo, hi = bootstrap_ratio_ci(first, last, n_resamples=n_resamples, seed=seed)
    _, mw_p = mann_whitney_u(first, last)
    result.update(burst=_lite(first), sustained=_lite(last), ratio=ratio, ci95=[lo, hi], mw_p=mw_p)
    result["flag"] = (lo > 1.0 or hi < 1.0) and abs(ratio - 1.0) >= DRIFT_MIN_EFFECT
    xs, medians = _trend_series(samples_ns, t_ns, max_trend_points)
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
