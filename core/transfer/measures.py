"""Measures read off validation curves, which mean something before training converges.

A curve is a list of ``[step, score]`` pairs, one per validation check, with scores oriented so
that higher is better.

- ``effective_data``: effective data transferred (Hernandez et al. 2021, "Scaling Laws for
  Transfer"): a fine-tuned arm reaches score y after D_F steps; the scratch arm's curve reaches y
  after D_E steps (linear interpolation between its checks); D_T = D_E - D_F is what pretraining
  was worth in target steps, given as a fraction of the budget. It is censored where the curve
  cannot tell: "> x" when scratch never reaches y within the budget, "<= x" when scratch was
  already there at its first check (no score is recorded before it).
- ``auc``: the area under the validation curve divided by its span, i.e. the mean score over
  training: a head start counts even where the final scores meet.
- ``best_val``: the best validation check, the score a best-validation checkpoint would have.

Along the target-data axis (``train_sizes``), effective data is what Hernandez et al. define:
``data_transferred`` reads D_E, the target samples a scratch model of the same size needs to score
what the fine-tuned arm scores on D_F samples, off scratch's score against data; D_T = D_E - D_F,
and ``fit_power_law`` fits D_T = k * D_F^alpha.
"""
from __future__ import annotations

import math
import statistics


def mean_curve(curves: list[list]) -> list[tuple[float, float]]:
    """Pointwise mean over seeds, at the steps every curve has."""
    if not curves:
        return []
    steps = set.intersection(*({s for s, _ in c} for c in curves))
    return [(s, statistics.fmean(v for c in curves for s2, v in c if s2 == s)) for s in sorted(steps)]


def first_reach(curve: list, y: float) -> tuple[float | None, str | None]:
    """The first step at which the curve reaches y, interpolated: (step, None); (first step, "<=")
    when its first check is already there; (None, ">") when it never gets there."""
    pts = sorted((float(s), float(v)) for s, v in curve)
    if not pts:
        return None, ">"
    if pts[0][1] >= y:
        return pts[0][0], "<="
    for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
        if v1 >= y:
            return s0 + (y - v0) * (s1 - s0) / (v1 - v0), None
    return None, ">"


def effective_data(scratch: list, finetuned: list, budget: int, at: str = "first") -> dict:
    """D_T = D_E - D_F at the fine-tuned arm's first (or last) validation check, in steps and as
    a fraction of the budget; ``censored`` is None, ">" (a lower bound) or "<=" (an upper bound)."""
    ft = sorted((float(s), float(v)) for s, v in finetuned)
    if not ft or not scratch:
        return {"at_step": None, "scratch_steps": None, "steps": float("nan"), "fraction": float("nan"), "censored": None}
    d_f, y = ft[0] if at == "first" else ft[-1]
    d_e, censored = first_reach(scratch, y)
    last = max(float(s) for s, _ in scratch)
    steps = (last if d_e is None else d_e) - d_f
    return {"at_step": d_f, "scratch_steps": d_e if censored is None else None, "steps": steps,
            "fraction": steps / budget, "censored": censored}


def auc(curve: list) -> float:
    """Trapezoidal area under the curve over its own span, divided by that span (a mean score)."""
    pts = sorted((float(s), float(v)) for s, v in curve)
    if not pts:
        return float("nan")
    if len(pts) == 1 or pts[-1][0] == pts[0][0]:
        return pts[-1][1]
    area = sum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(pts, pts[1:]))
    return area / (pts[-1][0] - pts[0][0])


def best_val(curve: list) -> tuple[float, float]:
    """(step, score) of the best validation check; the earliest when tied."""
    if not curve:
        return float("nan"), float("nan")
    s, v = max(((float(s), float(v)) for s, v in curve), key=lambda p: (p[1], -p[0]))
    return s, v


def fmt_effective(d: dict) -> str:
    """"+0.53", "> +0.67" or "<= +0.00": D_T as a fraction of the budget."""
    f = d.get("fraction")
    if f is None or f != f:
        return "n/a"
    return {">": "> ", "<=": "<= "}.get(d.get("censored"), "") + f"{f:+.2f}"


# -- effective data along the target-data axis (Hernandez et al. 2021) ------------------------------
def scratch_envelope(points: list) -> list[tuple[float, float]]:
    """Scratch's score against training-set size, [(D, score)], made non-decreasing (the best
    score reached at D or fewer samples): more data cannot be worth less than less data."""
    out, best = [], float("-inf")
    for d, s in sorted((float(d), float(s)) for d, s in points):
        best = max(best, s)
        out.append((d, best))
    return out


def data_needed(points: list, y: float) -> tuple[float, str | None]:
    """D_E: the training-set size at which scratch reaches score y, interpolated linearly in log D
    between its sizes: (D_E, None); (smallest size, "<=") when scratch is there at its smallest
    size; (largest size, ">") when it never gets there."""
    env = scratch_envelope(points)
    if not env:
        return float("nan"), ">"
    if env[0][1] >= y:
        return env[0][0], "<="
    for (d0, s0), (d1, s1) in zip(env, env[1:]):
        if s1 >= y:
            t = (y - s0) / (s1 - s0)
            return math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0))), None
    return env[-1][0], ">"


def data_transferred(points: list, d_f: float, y: float) -> dict:
    """Effective data transferred at one fine-tuning size: a fine-tuned arm trained on D_F samples
    scores y; scratch needs D_E samples for y; D_T = D_E - D_F (target samples), and
    D_T / D_E is the share of the effective data that pretraining gave. ``censored`` as in
    ``data_needed``: ">" makes D_T a lower bound, "<=" an upper bound."""
    d_e, censored = data_needed(points, y)
    d_t = d_e - d_f
    return {"size": d_f, "score": y, "scratch_size": d_e, "transferred": d_t,
            "share": d_t / d_e if d_e > 0 else float("nan"), "censored": censored}


def fit_power_law(sizes: list[float], transferred: list[float]) -> tuple[float, float]:
    """(k, alpha) of D_T = k * D_F^alpha, least squares in log-log over the points with D_T > 0
    (scipy.stats.linregress); NaNs with fewer than two such points at two different sizes."""
    from scipy import stats

    pts = [(math.log(d), math.log(t)) for d, t in zip(sizes, transferred) if t > 0 and d > 0]
    if len({x for x, _ in pts}) < 2:
        return float("nan"), float("nan")
    fit = stats.linregress([x for x, _ in pts], [y for _, y in pts])
    return math.exp(fit.intercept), float(fit.slope)


def fmt_transferred(d: dict) -> str:
    """"+1,234", "> +3,600" or "<= +0": D_T in target samples."""
    t = d.get("transferred")
    if t is None or t != t:
        return "n/a"
    return {">": "> ", "<=": "<= "}.get(d.get("censored"), "") + f"{t:+,.0f}"
