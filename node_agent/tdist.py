"""Student's t distribution: cdf, survival function and quantile.

placeholder: replaced at merge
"""

from __future__ import annotations


def t_cdf(x: float, df: float) -> float:
    """P[T <= x] for Student's t with `df` degrees of freedom."""
    from scipy.stats import t

    return float(t.cdf(x, df))


def t_sf(x: float, df: float) -> float:
    """P[T > x] for Student's t with `df` degrees of freedom."""
    from scipy.stats import t

    return float(t.sf(x, df))


def t_ppf(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, df))
