"""The report of a transfer matrix: results.json (every run and the summary), report.md (a table
per target with every measure), heatmap.png and curves.png. It reads only the summary and the cells."""
from __future__ import annotations

import math
from pathlib import Path

from .. import runs
from .measures import fmt_effective
from .plan import SCRATCH
from .plots import MEASURE_TITLES, plot_curves, plot_heatmap
from .stats import ALPHA


def fmt(x, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def header(exp: dict) -> list[str]:
    boot = (f" Bootstrap 95% intervals of each gain ({exp['bootstrap']} percentile resamples) are in results.json."
            if exp.get("bootstrap") else "")
    left_out = "".join(f" `{name}` is left out of `all`: {why}." for name, why in (exp.get("left_out") or {}).items())
    return [
        f"# Transfer report ({exp.get('profile', 'custom')} profile)", "",
        f"Backbone preset `{exp['preset']}`; every arm: {exp['target_steps']} steps on the target"
        + "".join(f" ({t}: {n})" for t, n in (exp.get("steps_by_target") or {}).items()) + " with "
        f"{exp.get('evals', 4)} validation checks, seeds {', '.join(map(str, exp['seeds']))}, learning-rate sweep "
        f"{', '.join(f'{lr:g}' for lr in exp['lrs'])}; task sources pretrained for {exp['source_steps']} steps.{left_out}",
        "",
        "**Higher is better everywhere**: metrics where lower is better (bits per byte) are negated.",
        "",
        "How to read a table:",
        "",
        "- **best lr**: each arm is reported at its own learning rate with the best mean *final validation* "
        "score over seeds. ⚠ marks a best rate at the edge of the sweep: a better one may lie beyond it.",
        "- **test (last)**: test score of the *last* checkpoint, mean ± 95% Student-t half-width over seeds. "
        "Every gain below is computed from these.",
        "- **best val @ step**: the best validation check (mean over seeds) and where it was; the score of a "
        "best-validation checkpoint, optimistic because chosen on the same split.",
        "- **gain**: test (last) minus the scratch arm of the same architecture, ± the 95% Welch interval "
        "(Welch–Satterthwaite degrees of freedom). **p (Holm)**: Welch's two-sided p-value after Holm's "
        f"correction across every gain in this matrix; a gain is *distinguishable* (✓) when it is below {ALPHA}.{boot}",
        "- **AUC**: area under the validation curve over its span (the mean validation score over training); "
        "**AUC gain** over scratch, Welch on per-seed AUCs, Holm-corrected as its own family (✓ below "
        f"{ALPHA}).",
        "- **eff. data**: effective data transferred (Hernandez et al. 2021): the scratch steps needed to "
        "reach the fine-tuned arm's validation score, minus the fine-tuned arm's steps, as a fraction of "
        "the budget, read off the scratch arm's mean validation curve (interpolated). *first*: at the "
        "fine-tuned arm's first check (its head start); *end*: at its final score. `>`: scratch never gets "
        "there within the budget (a lower bound); `<=`: scratch was there by its first check (an upper bound).",
        "",
    ]


def target_table(target: str, rows: dict) -> list[str]:
    first = next(iter(rows.values()))
    name = first["metric"] if first["higher_is_better"] else f"-{first['metric']}"
    lines = [f"## {target} ({name})", "",
             "| arm | best lr | test (last) | best val @ step | gain | p (Holm) | AUC | AUC gain | eff. data first | eff. data end |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted(rows.values(), key=lambda r: (r["source"] != SCRATCH, -r["mean"])):
        lr = f"{row['best_lr']:g}" + (" ⚠" if row["lr_at_edge"] else "")
        test = f"{fmt(row['mean'])} ± {fmt(row['ci95'])}"
        peak = f"{fmt(row['val_best'])} @ {row['val_best_step']:.0f}" if not math.isnan(row["val_best"]) else "n/a"
        auc = fmt(row["auc_mean"])
        if row["source"] == SCRATCH:
            lines.append(f"| {row['arm']} | {lr} | {test} | {peak} | — | — | {auc} | — | — | — |")
            continue
        gain = f"{row['gain']:+.4f} ± {fmt(row['gain_ci95'])}"
        p = fmt_p(row["gain_p_holm"]) + (" ✓" if row["distinguishable"] else "")
        auc_gain = f"{row['auc_gain']:+.4f}" + (" ✓" if row["auc_distinguishable"] else "")
        lines.append(f"| {row['arm']} | {lr} | {test} | {peak} | {gain} | {p} | {auc} | {auc_gain} | "
                     f"{fmt_effective(row['effective_data'])} | {fmt_effective(row['effective_data_end'])} |")
    lines.append("")
    for row in rows.values():
        if row.get("of_reference") is not None:
            lines += [f"Scratch reaches {row['of_reference']:.0%} of the default `suite train --task {target}` run's "
                      f"test {row['metric']} ({row['reference']:g}).", ""]
    return lines


def write_report(exp: dict, results: list[dict], summary: dict, out: Path) -> None:
    runs.write_json(out / "results.json", {"experiment": exp, "summary": summary, "runs": results})
    lines = header(exp)
    edge = [f"{t} {a}" for t, rows in summary.items() for a, r in rows.items() if r["lr_at_edge"]]
    if edge:
        lines += [f"⚠ {len(edge)} of {sum(len(r) for r in summary.values())} arms chose a learning rate at the edge "
                  f"of the sweep: {', '.join(edge)}.", ""]
    for target, rows in summary.items():
        lines += target_table(target, rows)
    measure = exp.get("measure") or "gain"
    lines += [f"heatmap.png shows {MEASURE_TITLES[measure]} (`--measure gain|effective-data|auc` chooses); "
              "curves.png the validation curves at each arm's best lr.", ""]
    (out / "report.md").write_text("\n".join(lines))
    plot_heatmap(exp, summary, out / "heatmap.png", measure)
    plot_curves(results, summary, out / "curves.png")
