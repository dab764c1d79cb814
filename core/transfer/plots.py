"""The figures of a transfer report: heatmap.png (sources x targets, one measure), curves.png
(validation curves at each arm's best learning rate) and, with a target-data axis,
transfer-scaling.png (effective data transferred against fine-tuning data, log-log)."""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from .measures import fmt_effective
from .plan import SCRATCH
from .stats import noise_units

# What the heatmap can show, as its title says it
MEASURE_TITLES = {
    "gain": "test score gain over scratch (* = distinguishable after Holm)",
    "auc": "gain in area under the validation curve (* = distinguishable after Holm)",
    "effective-data": "effective data transferred at the first check, fraction of the budget",
}


def cell_view(row: dict, measure: str) -> tuple[str, float]:
    """(annotation, colour value in [-2, 2]) of one heatmap cell."""
    if measure == "gain":
        return f"{row['gain']:+.3f}" + ("*" if row["distinguishable"] else ""), noise_units(row["gain"], row["gain_ci95"])
    if measure == "auc":
        return (f"{row['auc_gain']:+.3f}" + ("*" if row["auc_distinguishable"] else ""),
                noise_units(row["auc_gain"], row["auc_gain_ci95"]))
    d = row["effective_data"]
    f = d["fraction"]
    return fmt_effective(d).replace(" ", ""), 0.0 if math.isnan(f) else max(-2.0, min(2.0, 2 * f))


def plot_heatmap(exp: dict, summary: dict, path: Path, measure: str | None = None) -> None:
    """Sources x targets, one panel per adaptation method. Targets have different metrics, so the colour
    is unit-free: for gains, the gain divided by the half-width of its 95% interval, clipped to
    [-2, 2] (beyond +-1 the interval excludes 0); for effective data, twice the fraction of the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    measure = measure or exp.get("measure") or "gain"
    targets = list(summary)
    sides = list(dict.fromkeys(row["side"] for rows in summary.values() for row in rows.values() if row.get("side")))
    plain = any(row["source"] != SCRATCH and not row.get("side") for rows in summary.values() for row in rows.values())
    # a row per source, and per source and side where sequence-to-sequence targets have side arms
    lines = [(s, None) for s in exp["sources"]] if plain or not sides else []
    lines += [(s, side) for side in sides for s in exp["sources"]]
    sources = [s if side is None else f"{s}@{side}" for s, side in lines]
    methods = exp["adapt"]
    labels = []
    for t in targets:
        row = next(iter(summary[t].values()))
        labels.append(f"{t}\n({'' if row['higher_is_better'] else '-'}{row['metric']})")
    fig, axes = plt.subplots(1, len(methods), figsize=(max(6.0, 1.6 + 1.4 * len(targets) * len(methods)),
                                                       1.6 + 0.55 * len(sources)), squeeze=False)
    for ax, method in zip(axes[0], methods):
        rows = [[summary[t].get(f"{s}/{method}" + ("" if side is None else f"@{side}")) for t in targets] for s, side in lines]
        views = [[None if r is None else cell_view(r, measure) for r in row] for row in rows]
        shade = np.array([[np.nan if v is None else v[1] for v in row] for row in views])
        ax.imshow(shade, cmap="RdBu", vmin=-2, vmax=2, aspect="auto")
        for i, row in enumerate(views):
            for j, v in enumerate(row):
                dark = v is not None and abs(shade[i, j]) > 1.2
                ax.text(j, i, "—" if v is None else v[0], ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(targets)), labels, fontsize=8)
        ax.set_yticks(range(len(sources)), sources)
        ax.set_title(f"adapt={method}", fontsize=9)
        ax.set_xlabel("target")
    axes[0][0].set_ylabel("source")
    fig.suptitle(f"Transfer: {MEASURE_TITLES[measure]}\nhigher is better; colour: "
                 + ("twice the fraction, clipped to +-2" if measure == "effective-data" else
                    "gain / half-width of its 95% interval, clipped to +-2"), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_curves(results: list[dict], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(summary)
    cols = min(3, len(targets))
    rows_n = math.ceil(len(targets) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), squeeze=False)
    arms = list(dict.fromkeys(arm for rows in summary.values() for arm in rows))
    colour = {arm: plt.get_cmap("tab10")(i % 10) for i, arm in enumerate(arms)}  # one colour per arm in every panel
    for ax, target in zip(axes.flat, targets):
        for arm, row in summary[target].items():
            curves = [r["curve"] for r in results if r["target"] == target and r["arm"] == arm and r["lr"] == row["best_lr"]]
            steps = sorted({s for c in curves for s, _ in c})
            means = [statistics.fmean(v for c in curves for s2, v in c if s2 == s) for s in steps]
            ax.plot(steps, means, marker="o", markersize=3, label=f"{arm} (lr {row['best_lr']:g})", color=colour[arm],
                    linestyle="--" if row["source"] == SCRATCH else "-")
        metric = next(iter(summary[target].values()))
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(("" if metric["higher_is_better"] else "-") + f"val {metric['metric']}")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(targets):]:
        ax.axis("off")
    fig.suptitle("Validation score against steps, mean over seeds at each arm's best lr (higher is better)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_scaling(scaling: dict, path: Path) -> None:
    """One log-log panel per target: D_T against D_F, a line per fine-tuned arm, its fitted law
    dashed. A lower bound (scratch never got there) is an upward triangle at the bound (on the
    panel's floor when the bound is 0 or less), an upper bound a downward one; other points with
    D_T <= 0 (no transfer, or negative) sit on the floor as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    targets = list(scaling)
    fig, axes = plt.subplots(1, len(targets), figsize=(max(6.0, 4.2 * len(targets)), 3.8), squeeze=False)
    for ax, target in zip(axes[0], targets):
        laws = scaling[target]["arms"]
        positive = [p["transferred"] for law in laws.values() for p in law["points"] if p["transferred"] > 0]
        floor = min(positive) / 3 if positive else 1.0
        for i, (arm, law) in enumerate(laws.items()):
            colour = plt.get_cmap("tab10")(i % 10)
            pts = law["points"]
            xs = [p["size"] for p in pts]
            ys = [p["transferred"] if p["transferred"] > 0 else floor for p in pts]
            ax.plot(xs, ys, color=colour, alpha=0.5)
            for x, y, p in zip(xs, ys, pts):
                marker = {">": "^", "<=": "v"}.get(p["censored"], "o") if p["transferred"] > 0 or p["censored"] == ">" else "x"
                ax.plot([x], [y], marker=marker, color=colour, markersize=7, linestyle="none")
            ax.plot([], [], marker="o", color=colour, label=arm + ("" if math.isnan(law["k"]) else
                                                                   f": k={law['k']:.3g}, alpha={law['alpha']:.2f}"))
            if not math.isnan(law["k"]):
                grid = np.geomspace(min(xs), max(xs), 20)
                ax.plot(grid, law["k"] * grid ** law["alpha"], color=colour, linestyle="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{target} ({scaling[target]['metric']})", fontsize=10)
        ax.set_xlabel("fine-tuning data D_F (target samples)")
        ax.set_ylabel("effective data transferred D_T")
        ax.legend(fontsize=6)
    fig.suptitle("Effective data transferred (Hernandez et al. 2021), D_T = D_E - D_F\n"
                 "^ lower bound (scratch never got there), v upper bound, x no transfer (D_T <= 0); dashed: the fitted law",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
