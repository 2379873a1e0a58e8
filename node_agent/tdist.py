"""Student's t distribution with real-valued degrees of freedom, in pure stdlib.

The agent and the controller need t quantiles for intervals over a handful of independent runs
(R - 1 degrees of freedom) and for Welch's test (Welch-Satterthwaite gives fractional degrees of
freedom). Both run where scipy is not installed, so this module computes them from the
regularized incomplete beta function:

    P[T > x] = I_{df / (df + x^2)}(df / 2, 1 / 2) / 2        (x >= 0)

with I evaluated by its continued fraction (modified Lentz), and the inverse by a bracketed
Newton iteration on the survival function. Tested against scipy.stats.t to ~1e-12 relative for
df in [1, 1e6] (tests/unit/test_stats.py).
"""

from __future__ import annotations

import math
import statistics

_NORMAL = statistics.NormalDist()
_TINY = 1e-300
_EPS = 1e-16


def _stirling_tail(z: float) -> float:
    """lgamma(z) - ((z - 1/2) log z - z + log(2 pi) / 2), by its asymptotic series (z >= 100)."""
    z2 = z * z
    return (1.0 / 12.0 - (1.0 / 360.0 - 1.0 / (1260.0 * z2)) / z2) / z


def _log_beta(a: float, b: float) -> float:
    """log B(a, b). For a large parameter lgamma(a) - lgamma(a + b) cancels to ~1e-10; there
    the difference comes from Stirling's series instead, accurate to a few ulps."""
    big, small = (a, b) if a >= b else (b, a)
    if big < 100.0:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    # lgamma(big + small) - lgamma(big), without forming either.
    diff = (
        (big - 0.5) * math.log1p(small / big)
        + small * math.log(big + small)
        - small
        + _stirling_tail(big + small)
        - _stirling_tail(big)
    )
    return math.lgamma(small) - diff


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = _TINY if abs(d) < _TINY else d
    d = 1.0 / d
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    return h  # pragma: no cover - the fraction converges in O(sqrt(max(a, b))) terms


def regularized_beta(x: float, a: float, b: float, *, complement: float | None = None) -> float:
    """I_x(a, b), the regularized incomplete beta function, for a, b > 0 and 0 <= x <= 1.

    ``complement`` is 1 - x when the caller knows it more precisely than 1 - x rounds.
    """
    if a <= 0 or b <= 0:
        raise ValueError(f"beta parameters must be > 0, got a={a} b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    y = 1.0 - x if complement is None else complement
    if x == 0.0 or y == 0.0:
        return 0.0 if x == 0.0 else 1.0
    log_front = a * math.log(x) + b * math.log(y) - _log_beta(a, b)
    # The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(y, b, a) / b


def _check_df(df: float) -> None:
    if not df > 0 or math.isinf(df) and df < 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")


def _upper_tail(x: float, df: float) -> float:
    """P[T > x] for x >= 0."""
    if math.isinf(df):
        return _NORMAL.cdf(-x)
    if x == 0.0:
        return 0.5
    x2 = x * x
    # z = df / (df + x^2) and 1 - z = x^2 / (df + x^2), each formed without cancellation.
    z = df / (df + x2)
    w = x2 / (df + x2)
    return 0.5 * regularized_beta(z, df / 2.0, 0.5, complement=w)


def t_sf(x: float, df: float) -> float:
    """P[T > x] for Student's t with ``df`` (real, > 0) degrees of freedom."""
    _check_df(df)
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 0.0 if x > 0 else 1.0
    return _upper_tail(x, df) if x >= 0 else 1.0 - _upper_tail(-x, df)


def t_cdf(x: float, df: float) -> float:
    """P[T <= x] for Student's t with ``df`` (real, > 0) degrees of freedom."""
    _check_df(df)
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    return _upper_tail(-x, df) if x <= 0 else 1.0 - _upper_tail(x, df)


def _t_pdf(x: float, df: float) -> float:
    if math.isinf(df):
        return _NORMAL.pdf(x)
    log_c = math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1.0) / 2.0 * math.log1p(x * x / df))


def _upper_quantile(q: float, df: float) -> float:
    """The x >= 0 with P[T > x] = q, for 0 < q <= 1/2."""
    if q == 0.5:
        return 0.0
    if df == 1.0:
        return 1.0 / math.tan(math.pi * q)  # Cauchy: exact
    if df == 2.0:
        return (1.0 - 2.0 * q) * math.sqrt(2.0 / (4.0 * q * (1.0 - q)))  # exact closed form
    # Bracket [lo, hi] with sf(lo) >= q > sf(hi), starting near the normal quantile.
    z = _NORMAL.inv_cdf(1.0 - q)
    lo, hi = 0.0, max(1.0, z)
    while _upper_tail(hi, df) > q:
        lo, hi = hi, hi * 2.0
    x = min(max(z * (1.0 + (z * z + 1.0) / (4.0 * df)), lo), hi)  # Cornish-Fisher first term
    for _ in range(200):
        f = _upper_tail(x, df) - q
        if f > 0:
            lo = x
        else:
            hi = x
        slope = _t_pdf(x, df)
        step = f / slope if slope > 0 else math.inf
        candidate = x + step
        if not lo < candidate < hi:
            candidate = 0.5 * (lo + hi)  # Newton left the bracket: bisect instead
        if abs(candidate - x) <= 1e-15 * max(1.0, abs(x)) or hi - lo <= 1e-15 * max(1.0, hi):
            return candidate
        x = candidate
    return x


def t_ppf(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` (real, > 0) degrees of freedom."""
    _check_df(df)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if math.isinf(df):
        return _NORMAL.inv_cdf(p)
    if p > 0.5:
        return _upper_quantile(1.0 - p, df)
    return -_upper_quantile(p, df)
