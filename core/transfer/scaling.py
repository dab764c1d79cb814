"""Transfer along the target-data axis (``train_sizes``): effective data transferred in target
samples and its power law, after Hernandez et al. 2021, "Scaling Laws for Transfer".

For every target, scratch's score against training-set size (each size at its own best learning
rate) is the yardstick. A fine-tuned arm trained on D_F samples scores y; D_E is the size at which
scratch of the same architecture scores y (``measures.data_transferred``); D_T = D_E - D_F is the
data pretraining was worth, D_T / D_E the share of the effective data it gave, and over the sizes
D_T = k * D_F^alpha is fitted in log-log (``measures.fit_power_law``). Intervals of k and alpha
come from a bootstrap over seeds: each arm's and scratch's seeds are resampled at every size, and
the whole chain (means, D_E, fit) is recomputed. The score is the test score of the best-validation
checkpoint where every run records it (early stopping, as Hernandez et al.'s runs), else the last.
"""
from __future__ import annotations

import math
import statistics

from .measures import data_transferred, fit_power_law
from .plan import SCRATCH


def seed_scores(row: dict) -> list[float]:
    """The per-seed scores of an arm at its best learning rate that the data axis reads."""
    best = row.get("test_best_seeds")
    return list(best) if best and len(best) == len(row["test"]) else list(row["test"])


def arm_law(scratch: dict, arm: dict) -> tuple[list[dict], float, float]:
    """scratch, arm: {size: [per-seed scores]}. The points (one per size of the arm) and (k, alpha)."""
    curve = [(d, statistics.fmean(v)) for d, v in scratch.items()]
    points = [data_transferred(curve, d, statistics.fmean(v)) for d, v in sorted(arm.items())]
    usable = [p for p in points if p["censored"] is None]
    k, alpha = fit_power_law([p["size"] for p in usable], [p["transferred"] for p in usable])
    return points, k, alpha


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def bootstrap_law(scratch: dict, arm: dict, resamples: int, seed: int = 0) -> dict:
    """95% percentile intervals of k and alpha, resampling the seeds of every (arm, size) and every
    scratch size with replacement; ``used`` counts the resamples where a law could be fitted."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def draw(groups: dict) -> dict:
        return {d: list(rng.choice(v, size=len(v), replace=True)) for d, v in groups.items()}

    ks, alphas = [], []
    for _ in range(resamples):
        _, k, alpha = arm_law(draw(scratch), draw(arm))
        if not math.isnan(k):
            ks.append(k)
            alphas.append(alpha)
    return {"k_ci": [percentile(ks, 2.5), percentile(ks, 97.5)], "alpha_ci": [percentile(alphas, 2.5), percentile(alphas, 97.5)],
            "used": len(ks), "resamples": resamples}


def scaling(summary: dict, resamples: int = 1000, seed: int = 0) -> dict:
    """{target: {"metric", "scratch": {arch: [[size, score]]}, "arms": {arm: law}}} for every target
    run at training-set sizes; empty when the experiment has no data axis."""
    by_target: dict = {}
    for rows in summary.values():
        for row in rows.values():
            if row.get("size") is not None:
                by_target.setdefault(row["target"], []).append(row)
    out = {}
    for target, rows in by_target.items():
        scratch: dict = {}
        arms: dict = {}
        for row in rows:
            if row["source"] == SCRATCH:
                if row["adapt"] == "full":
                    scratch.setdefault(row["arch"], {})[row["size"]] = seed_scores(row)
            else:
                arms.setdefault(row["arm"], {"arch": row["arch"], "sizes": {}})["sizes"][row["size"]] = seed_scores(row)
        laws = {}
        for arm, a in arms.items():
            base = scratch.get(a["arch"])
            if not base:
                continue
            points, k, alpha = arm_law(base, a["sizes"])
            law = {"arch": a["arch"], "points": points, "k": k, "alpha": alpha,
                   "fit_points": sum(p["censored"] is None and p["transferred"] > 0 for p in points)}
            laws[arm] = {**law, **(bootstrap_law(base, a["sizes"], resamples, seed) if resamples and not math.isnan(k) else {})}
        first = rows[0]
        out[target] = {"metric": first["metric"], "higher_is_better": first["higher_is_better"],
                       "scratch": {arch: sorted([d, statistics.fmean(v)] for d, v in s.items()) for arch, s in scratch.items()},
                       "arms": laws}
    return out
