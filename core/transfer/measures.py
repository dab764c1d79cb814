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
"""
from __future__ import annotations

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
