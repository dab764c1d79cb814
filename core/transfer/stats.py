"""Statistics of a transfer matrix, from scipy.

- ``mean_ci``: a mean over seeds and the half-width of its Student-t interval.
- ``welch_test``: the difference of two means, Welch's t-test with the Welch–Satterthwaite
  degrees of freedom, its two-sided p-value and interval (scipy.stats.ttest_ind, equal_var=False).
- ``bootstrap_ci``: a percentile bootstrap interval of the same difference (scipy.stats.bootstrap),
  as an option: with three seeds a bootstrap has little to resample, so it is not the default.
- ``holm``: Holm's step-down correction of a family of p-values (the matrix's comparisons), which
  keeps the chance of any false "distinguishable" at or below alpha.
"""
from __future__ import annotations

import math
import statistics

ALPHA = 0.05


def t_quantile(df: float, confidence: float = 0.95) -> float:
    from scipy import stats

    return float("nan") if not df >= 1e-9 else float(stats.t.ppf(0.5 + confidence / 2, df))


def mean_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its interval (Student t with n - 1 degrees of freedom)."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, float("nan")
    return m, t_quantile(len(values) - 1, confidence) * statistics.stdev(values) / math.sqrt(len(values))


def welch_test(a: list[float], b: list[float], confidence: float = 0.95) -> dict:
    """mean(a) - mean(b) with Welch's test: t, df (Welch–Satterthwaite), two-sided p, interval half-width."""
    from scipy import stats

    d = statistics.fmean(a) - statistics.fmean(b)
    out = {"diff": d, "t": float("nan"), "df": float("nan"), "p": float("nan"), "ci": float("nan")}
    if len(a) < 2 or len(b) < 2:
        return out
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if not va + vb > 0:  # no spread at all (or NaN scores): Welch's test is undefined, so no p-value
        return {**out, "no_spread": va + vb == 0}
    res = stats.ttest_ind(a, b, equal_var=False)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return {"diff": d, "t": float(res.statistic), "df": df, "p": float(res.pvalue),
            "ci": t_quantile(df, confidence) * math.sqrt(va + vb)}


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Difference of means a - b and the half-width of its 95% Welch interval."""
    r = welch_test(a, b)
    return r["diff"], r["ci"]


def bootstrap_ci(a: list[float], b: list[float], resamples: int, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of mean(a) - mean(b), resampling each group."""
    import numpy as np
    from scipy import stats

    if len(a) < 2 or len(b) < 2 or resamples < 1:
        return float("nan"), float("nan")
    res = stats.bootstrap((np.asarray(a, float), np.asarray(b, float)), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis),
                          n_resamples=resamples, confidence_level=confidence, method="percentile",
                          random_state=np.random.default_rng(seed), vectorized=True)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def holm(pvalues: dict) -> dict:
    """Holm-adjusted p-values, key by key; NaN p-values (untestable) stay NaN and are not counted."""
    tested = sorted(((p, k) for k, p in pvalues.items() if not math.isnan(p)), key=lambda x: x[0])
    m, running, out = len(tested), 0.0, {k: float("nan") for k in pvalues}
    for i, (p, k) in enumerate(tested):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def noise_units(gain: float, ci: float) -> float:
    """A gain in units of its 95% half-width, clipped to [-2, 2]; 0 when there is no interval."""
    if math.isnan(ci):
        return 0.0
    if ci == 0:
        return 0.0 if gain == 0 else math.copysign(2.0, gain)
    return max(-2.0, min(2.0, gain / ci))
