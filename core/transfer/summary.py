"""From cells to the matrix: one row per (target, arm), read only from the cell records.

Each arm is reported at its own best learning rate, the one with the best mean final validation
score over seeds (Rothermel et al. 2021: untuned rates make transfer gains appear and vanish);
``lr_at_edge`` flags a best rate at either end of the sweep, where a better one may lie beyond.
Scores are test scores of the last checkpoint (``test``); ``val_best`` is the best validation
check (what a best-validation checkpoint scores on validation, optimistic because chosen on the
same split), and ``test_best`` its test score when the runs record it. Each non-scratch arm is
compared with the scratch arm of its own architecture: final-score gain (Welch), AUC gain
(Welch on per-seed AUC) and effective data transferred. Holm's correction runs over all the
matrix's final-score gains, and separately over its AUC gains. A frozen arm is also compared with
its random control where the plan has one (``random_controls``: the same architecture from random
init, adapted the same way; FPT's control), a third Holm family; an ORCA arm (``orca+METHOD``) with
the same source adapted by METHOD without the align stage (its alignment gain), a fourth. A row
also holds the parameters its method trains and, for ORCA, the distance before and after alignment.

With a target-data axis (``train_sizes``) every (target, size) is a table of its own, its key
``"vision (n=100)"``; ``scaling.py`` reads effective data off those tables.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import measures, stats
from ..adapt import split
from .plan import SCRATCH, budget, lrs_of, panel


def _mean(xs):
    return statistics.fmean(xs) if xs else float("nan")


def summarize(results: list[dict], exp: dict | None = None) -> dict:
    """{target: {arm: row}}; see the module docstring for what a row holds."""
    exp = exp or {}
    summary: dict = {}
    by_target: dict = {}
    for r in results:
        by_target.setdefault(panel(r["target"], r.get("size")), {}).setdefault(r["arm"], []).append(r)
    for key, arms in by_target.items():
        rows = {arm: arm_row(rs, exp) for arm, rs in arms.items()}
        target = next(iter(rows.values()))["target"]
        for row in rows.values():
            base = next(r for r in rows.values() if r["source"] == SCRATCH and r["arch"] == row["arch"] and r["adapt"] == "full")
            compare(row, base, exp)
            control = next((r for r in rows.values() if r["source"] == SCRATCH and r["arch"] == row["arch"]
                            and r["adapt"] == row["adapt"] != "full" and r is not row), None)
            if control is not None:  # FPT's control: the same architecture from random init, frozen the same way
                c = stats.welch_test(row["test"], control["test"])
                row.update(control=control["arm"], control_gain=c["diff"], control_gain_ci95=c["ci"], control_gain_p=c["p"])
            aligns, then = split(row["adapt"])
            unaligned = aligns and next((r for r in rows.values() if r["source"] == row["source"] and r["arch"] == row["arch"]
                                         and r["adapt"] == then and r.get("side") == row.get("side")), None)
            if unaligned:  # ORCA's alignment gain: align-then-METHOD against METHOD alone, same source
                g = stats.welch_test(row["test"], unaligned["test"])
                row.update(align_vs=unaligned["arm"], align_gain=g["diff"], align_gain_ci95=g["ci"], align_gain_p=g["p"])
        given = (exp.get("reference") or {}).get(target)
        ref, origin = reference_score(given)
        for row in rows.values():
            if given is not None and ref is None and row["source"] == SCRATCH and row["adapt"] == "full":
                row["reference_from"] = origin  # given, but not a finished run: the report says so
            if ref and row["source"] == SCRATCH and row["adapt"] == "full":
                raw = row["raw_mean"]
                row["of_reference"] = raw / ref if row["higher_is_better"] else ref / raw
                row["reference"], row["reference_from"] = ref, origin
        rank(rows)
        summary[key] = rows
    correct(summary)
    return summary


def rank(rows: dict, resamples: int = 2000) -> None:
    """Each arm's rank in its table by mean test score (1: best) and a 95% interval of it: the seeds of
    every arm resampled with replacement, the arms ranked again each time (percentiles of the ranks)."""
    import numpy as np

    arms = [a for a, r in rows.items() if r["test"] and all(x == x for x in r["test"])]
    if not arms:
        return
    rng = np.random.default_rng(0)
    means = np.stack([[rng.choice(rows[a]["test"], len(rows[a]["test"])).mean() for _ in range(resamples)] for a in arms])
    ranks = (-means).argsort(axis=0).argsort(axis=0) + 1  # (arms, resamples): the rank of each arm in each resample
    order = sorted(arms, key=lambda a: -rows[a]["mean"])
    for i, a in enumerate(arms):
        rows[a].update(rank=order.index(a) + 1, rank_ci95=[int(np.percentile(ranks[i], 2.5)), int(np.percentile(ranks[i], 97.5))])


def arm_row(rs: list[dict], exp: dict) -> dict:
    by_lr: dict = {}
    for r in rs:
        by_lr.setdefault(r["lr"], []).append(r)
    best_lr = max(by_lr, key=lambda lr: nan_low(statistics.fmean(r["val"] for r in by_lr[lr])))  # NaN never wins
    best = sorted(by_lr[best_lr], key=lambda r: r["seed"])
    lrs = sorted(lrs_of(exp, best[0]["adapt"]) if exp.get("lrs") else by_lr)  # the arm's own sweep
    tests = [r["test"] for r in best]
    mean, ci = stats.mean_ci(tests)
    peaks = [measures.best_val(r["curve"]) for r in best]
    aucs = [measures.auc(r["curve"]) for r in best]
    test_best = [r["test_best"] for r in best if "test_best" in r]
    adapted = [r.get("adapted") or {} for r in best]
    aligned = [a["align"] for a in adapted if isinstance((a.get("align") or {}).get("before"), (int, float))]
    return {
        "arm": best[0]["arm"], "source": best[0]["source"], "adapt": best[0]["adapt"], "arch": best[0]["arch"],
        "target": best[0]["target"], "size": best[0].get("size"), "steps": best[0].get("steps"),
        "best_lr": best_lr, "lrs": lrs, "lr_at_edge": len(lrs) < 2 or best_lr in (lrs[0], lrs[-1]),
        "seeds": [r["seed"] for r in best], "test": tests, "mean": mean, "ci95": ci,
        "raw_mean": _mean([r["raw_test"] for r in best]),
        "val_by_lr": {str(lr): statistics.fmean(r["val"] for r in v) for lr, v in sorted(by_lr.items())},
        "val_best": _mean([v for _, v in peaks]), "val_best_step": _mean([s for s, _ in peaks]),
        "test_best": _mean(test_best) if len(test_best) == len(best) else None,
        "test_best_seeds": test_best if len(test_best) == len(best) else None,
        "auc": aucs, "auc_mean": _mean(aucs),
        "curve": measures.mean_curve([r["curve"] for r in best]),
        "budget": best[0].get("steps") or budget(exp, best[0]["target"]) if exp.get("target_steps") else
        int(max((s for r in best for s, _ in r["curve"]), default=1)),
        "metric": best[0]["metric"], "higher_is_better": best[0]["higher_is_better"],
        "nan_runs": sum(1 for r in rs if r["val"] != r["val"] or r["test"] != r["test"]),
        "trainable": adapted[0].get("trainable"), "trainable_share": adapted[0].get("share"),
        **({"align_before": _mean([a["before"] for a in aligned]), "align_after": _mean([a["after"] for a in aligned]),
            "align_distance": aligned[0].get("distance")} if aligned else {}),
        **({"side": best[0]["side"]} if best[0].get("side") else {}),  # a side arm of a sequence-to-sequence target
    }


def nan_low(x: float) -> float:
    return float("-inf") if x != x else x


def compare(row: dict, base: dict, exp: dict) -> None:
    """The arm against scratch of its architecture: gains, tests and effective data."""
    w = stats.welch_test(row["test"], base["test"])
    a = stats.welch_test(row["auc"], base["auc"])
    row.update(baseline=base["arm"], gain=w["diff"], gain_ci95=w["ci"], gain_df=w["df"], gain_p=w["p"],
               auc_gain=a["diff"], auc_gain_ci95=a["ci"], auc_gain_p=a["p"])
    if int(exp.get("bootstrap") or 0) > 0:
        row["gain_bootstrap95"] = list(stats.bootstrap_ci(row["test"], base["test"], int(exp["bootstrap"])))
    is_scratch = row["source"] == SCRATCH
    row["effective_data"] = None if is_scratch else measures.effective_data(base["curve"], row["curve"], row["budget"], "first")
    row["effective_data_end"] = None if is_scratch else measures.effective_data(base["curve"], row["curve"], row["budget"], "last")


def correct(summary: dict) -> None:
    """Holm across the matrix: one family for final-score gains, one for AUC gains, one for gains
    over the random controls."""
    arms = [(t, a) for t, rows in summary.items() for a, row in rows.items() if row["source"] != SCRATCH]
    for key, flag in (("gain_p", "distinguishable"), ("auc_gain_p", "auc_distinguishable"),
                      ("control_gain_p", "control_distinguishable"), ("align_gain_p", "align_distinguishable")):
        adjusted = stats.holm({ta: summary[ta[0]][ta[1]][key] for ta in arms if key in summary[ta[0]][ta[1]]})
        for t, rows in summary.items():
            for a, row in rows.items():
                p = adjusted.get((t, a), float("nan"))
                row[key + "_holm"] = p
                row[flag] = bool(p < stats.ALPHA)


def reference_score(value) -> tuple[float | None, str]:
    """A task's reference is its default ``suite train`` run, measured: the run's directory (or its
    metrics.json), read when the report is made. A number is taken as given and called typed in.
    Returns (its raw test score or None, where it came from)."""
    if value is None:
        return None, "no reference run given (`reference: {TASK: RUN_DIR}` or `--reference TASK=RUN_DIR`)"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), "a typed-in figure"
    path = Path(str(value))
    metrics = path / "metrics.json" if path.is_dir() else path
    try:
        m = json.loads(metrics.read_text())
        return float(m["splits"]["test"][m["primary"]]), f"the run {path}"
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{path} is not a finished run (no metrics.json with a test score): no reference"
