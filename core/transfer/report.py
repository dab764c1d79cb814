"""The report of a transfer matrix: results.json (every run and the summary), report.md (a table
per target with every measure), heatmap.png and curves.png. It reads only the summary and the cells."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .. import runs
from .measures import fmt_effective, fmt_transferred
from .plan import SCRATCH
from .plots import MEASURE_TITLES, plot_curves, plot_heatmap, plot_scaling
from .stats import ALPHA
from .summary import reference_score


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
        f"{', '.join(f'{lr:g}' for lr in exp['lrs'])}"
        + "".join(f" ({f}: {', '.join(f'{lr:g}' for lr in v)})" for f, v in (exp.get("lrs_by_adapt") or {}).items())
        + f"; task sources pretrained for {exp['source_steps']} steps.{left_out}" + sizes_line(exp),
        "", *seq2seq_lines(exp),
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
        "- **vs control**: a frozen arm minus the same architecture from random init frozen the same way "
        "(FPT's control), ± its 95% Welch interval; ✓ when distinguishable after Holm (its own family).",
        "",
    ]


def seq2seq_lines(exp: dict) -> list[str]:
    """Sequence-to-sequence targets: their preset, what a side arm is, and what the plan left out."""
    lines = []
    if exp.get("seq2seq_targets"):
        lines += [f"Sequence-to-sequence targets ({', '.join(exp['seq2seq_targets'])}) run on the encoder-decoder preset "
                  f"`{exp['seq2seq_preset']}`; their scratch arm is that preset from random init. A side arm "
                  "`SOURCE/none@SIDE` starts the encoder, the decoder or both (`init.encoder_from`, `init.decoder_from`) "
                  "from the source's blocks; the rest (a decoder's cross-attention always) starts fresh, and all of it trains.", ""]
    if exp.get("notes"):
        lines += ["Not planned:", "", *(f"- {note}." for note in exp["notes"]), ""]
    return lines


def sizes_line(exp: dict) -> str:
    if not exp.get("train_sizes"):
        return ""
    rule = exp.get("size_steps") or {}
    steps = (f"{rule['epochs']:g} epochs of the samples, at least {rule.get('min', 0)} steps and at most the budget"
             if rule.get("epochs") else "the budget")
    def listed(value) -> str:
        if isinstance(value, dict):
            return "; ".join(f"{t}: {', '.join(map(str, v))}" for t, v in value.items())
        return ", ".join(map(str, value))

    more = f"; scratch also at {listed(exp['scratch_sizes'])}" if exp.get("scratch_sizes") else ""
    return (f" Target training-set sizes (`data.train_limit`): {listed(exp['train_sizes'])}{more}; "
            f"a run on n samples trains for {steps}.")


def target_table(target: str, rows: dict) -> list[str]:
    first = next(iter(rows.values()))
    name = first["metric"] if first["higher_is_better"] else f"-{first['metric']}"
    lines = [f"## {target} ({name})", "",
             "| arm | best lr | test (last) | best val @ step | gain | p (Holm) | vs control | AUC | AUC gain | eff. data first | eff. data end |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted(rows.values(), key=lambda r: (r["source"] != SCRATCH, -r["mean"])):
        lr = f"{row['best_lr']:g}" + (" ⚠" if row["lr_at_edge"] else "")
        test = f"{fmt(row['mean'])} ± {fmt(row['ci95'])}"
        peak = f"{fmt(row['val_best'])} @ {row['val_best_step']:.0f}" if not math.isnan(row["val_best"]) else "n/a"
        auc = fmt(row["auc_mean"])
        if row["source"] == SCRATCH:
            if row["adapt"] != "full":  # a random control: its gain over full training from scratch
                lines.append(f"| {row['arm']} | {lr} | {test} | {peak} | {row['gain']:+.4f} ± {fmt(row['gain_ci95'])} | — | — "
                             f"| {auc} | — | — | — |")
            else:
                lines.append(f"| {row['arm']} | {lr} | {test} | {peak} | — | — | — | {auc} | — | — | — |")
            continue
        gain = f"{row['gain']:+.4f} ± {fmt(row['gain_ci95'])}"
        p = fmt_p(row["gain_p_holm"]) + (" ✓" if row["distinguishable"] else "")
        auc_gain = f"{row['auc_gain']:+.4f}" + (" ✓" if row["auc_distinguishable"] else "")
        control = "—" if "control" not in row else (f"{row['control_gain']:+.4f} ± {fmt(row['control_gain_ci95'])}"
                                                    + (" ✓" if row.get("control_distinguishable") else ""))
        lines.append(f"| {row['arm']} | {lr} | {test} | {peak} | {gain} | {p} | {control} | {auc} | {auc_gain} | "
                     f"{fmt_effective(row['effective_data'])} | {fmt_effective(row['effective_data_end'])} |")
    lines.append("")
    for row in rows.values():
        if row.get("reference_from") and row.get("of_reference") is None:
            lines += [f"No share of the default `suite train --task {row['target']}` run for {row['arm']}: "
                      f"{row['reference_from']}.", ""]
        if row.get("of_reference") is not None:
            lines += [f"Scratch reaches {row['of_reference']:.0%} of the default `suite train --task {row['target']}` run's "
                      f"test {row['metric']} ({row['reference']:g}, {row['reference_from']}).", ""]
    return lines


def methods_section(exp: dict, summary: dict) -> list[str]:
    """With several adaptation methods: per table, the arms ranked with intervals and the parameters
    each trains; then ORCA's alignment gain (align-then-METHOD against METHOD alone, same source) and
    the distance its align stage reached."""
    if len(exp.get("adapt") or []) < 2:
        return []
    lines = ["## Adaptation methods", "",
             "Every arm of each table ranked by mean test score at its best learning rate; **rank (95%)**: the rank's "
             "interval when each arm's seeds are resampled with replacement (2,000 times). **trains**: the parameters "
             "the method trains (the task's adapter and head included) and their share of the model.", ""]
    for target, rows in summary.items():
        ranked = sorted((r for r in rows.values() if "rank" in r), key=lambda r: r["rank"])
        lines += [f"### {target}", "", "| rank | rank (95%) | arm | trains | test (last) | gain over scratch |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in ranked:
            trains = "n/a" if r.get("trainable") is None else f"{r['trainable']:,} ({100 * r['trainable_share']:.2f}%)"
            gain = "—" if r["source"] == SCRATCH and r["adapt"] == "full" else f"{r['gain']:+.4f} ± {fmt(r['gain_ci95'])}"
            lines.append(f"| {r['rank']} | {r['rank_ci95'][0]}-{r['rank_ci95'][1]} | {r['arm']} | {trains} | "
                         f"{fmt(r['mean'])} ± {fmt(r['ci95'])} | {gain} |")
        lines.append("")
    aligned = [(t, r) for t, rows in summary.items() for r in rows.values() if "align_gain" in r]
    if aligned:
        lines += ["### ORCA's alignment gain", "",
                  "An ORCA arm against the same source adapted the same way without the align stage, ± the 95% Welch "
                  "interval; p after Holm's correction over these gains (✓ below "
                  f"{ALPHA}). The distance is the align stage's, on fixed target samples against the source's reference "
                  "features, before and after (mean over the seeds).", "",
                  "| table | arm | against | alignment gain | p (Holm) | distance before | after |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for t, r in aligned:
            lines.append(f"| {t} | {r['arm']} | {r['align_vs']} | {r['align_gain']:+.4f} ± {fmt(r['align_gain_ci95'])} | "
                         f"{fmt_p(r['align_gain_p_holm'])}{' ✓' if r.get('align_distinguishable') else ''} | "
                         f"{fmt(r.get('align_before', float('nan')))} | {fmt(r.get('align_after', float('nan')))} |")
        lines.append("")
    return lines


def scaling_section(scaling: dict) -> list[str]:
    """The target-data axis: effective data in target samples, its share and the fitted law."""
    if not scaling:
        return []
    lines = ["## Effective data along the target-data axis", "",
             "Hernandez et al. 2021: a fine-tuned arm trained on D_F target samples scores y (test score of its "
             "best-validation checkpoint, mean over seeds at its best lr); **D_E** is the number of samples scratch of "
             "the same architecture needs for y, read off scratch's score against data (its running best, "
             "interpolated linearly in log D between its sizes); **D_T = D_E - D_F** is the effective data "
             "transferred, **share** = D_T / D_E the part of the effective data that pretraining gave. `>`: scratch "
             "never scores y at its largest size (D_T is a lower bound); `<=`: scratch scores y at its smallest "
             "size already (an upper bound). The law D_T = k * D_F^alpha is fitted in log-log over the sizes with "
             "an uncensored, positive D_T; its 95% intervals come from a bootstrap over seeds "
             "(transfer-scaling.png plots it).", ""]
    for target, t in scaling.items():
        name = t["metric"] if t["higher_is_better"] else f"-{t['metric']}"
        lines += [f"### {target} ({name})", ""]
        for arch, pts in t["scratch"].items():
            lines.append(f"Scratch ({arch}) against data: " + ", ".join(f"n={d:g}: {fmt(v)}" for d, v in pts) + ".")
        lines += ["", "| arm | D_F | score | D_E (scratch) | D_T | share | law D_T = k D_F^alpha |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for arm, law in t["arms"].items():
            fit = law_text(law)
            for i, p in enumerate(law["points"]):
                d_e = {">": "> ", "<=": "<= "}.get(p["censored"], "") + f"{p['scratch_size']:,.0f}"
                share = "n/a" if p["censored"] or math.isnan(p["share"]) or p["transferred"] <= 0 else f"{p['share']:.0%}"
                lines.append(f"| {arm} | {p['size']:,.0f} | {fmt(p['score'])} | {d_e} | {fmt_transferred(p)} | {share} | "
                             f"{fit if i == 0 else ''} |")
        lines.append("")
    return lines


def law_text(law: dict) -> str:
    if math.isnan(law["k"]):
        return f"not fitted: {law['fit_points']} size(s) with an uncensored positive D_T (two needed)"
    ci = ""
    if law.get("used"):
        ci = (f" (95%: k {law['k_ci'][0]:.3g} to {law['k_ci'][1]:.3g}, alpha {law['alpha_ci'][0]:.2f} to "
              f"{law['alpha_ci'][1]:.2f}; {law['used']} of {law['resamples']} resamples fitted)")
    return f"k = {law['k']:.3g}, alpha = {law['alpha']:.2f}{ci}"


def sources_section(exp: dict, out: Path) -> list[str]:
    """How good each task source is: its test score against its task's default run, where given."""
    rows = []
    for path in sorted(Path(out).glob("sources/*/*/metrics.json")):
        try:
            m = json.loads(path.read_text())
            task, score = m.get("task") or path.parent.parent.name, float(m["splits"]["test"][m["primary"]])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        ref, origin = reference_score((exp.get("reference") or {}).get(task))
        share = "n/a" if ref is None else f"{(score / ref if m['higher_is_better'] else ref / score):.0%}"
        rows.append(f"| {path.parent.name} | {m['primary']} | {fmt(score)} | {share} | {origin if ref is None else f'{fmt(ref)} ({origin})'} |")
    if not rows:
        return []
    return ["## Sources", "", "How far each task source is from its task's default `suite train` run (the reference): "
            "a source far below it speaks of early pretraining only.", "",
            "| source run | metric | test | share of reference | reference |", "| --- | --- | --- | --- | --- |", *rows, ""]


def write_report(exp: dict, results: list[dict], summary: dict, out: Path, scaling: dict | None = None) -> None:
    runs.write_json(out / "results.json", {"experiment": exp, "summary": summary, "scaling": scaling or {}, "runs": results})
    lines = header(exp)
    nan = [f"{t} {a} ({r['nan_runs']})" for t, rows in summary.items() for a, r in rows.items() if r.get("nan_runs")]
    if nan:
        lines += [f"⚠ Arms with runs whose validation or test score is NaN (never chosen as the best rate): {', '.join(nan)}.", ""]
    edge = [f"{t} {a}" for t, rows in summary.items() for a, r in rows.items() if r["lr_at_edge"]]
    if edge:
        lines += [f"⚠ {len(edge)} of {sum(len(r) for r in summary.values())} arms chose a learning rate at the edge "
                  f"of the sweep: {', '.join(edge)}.", ""]
    lines += sources_section(exp, out)
    for target, rows in summary.items():
        lines += target_table(target, rows)
    lines += methods_section(exp, summary)
    lines += scaling_section(scaling or {})
    measure = exp.get("measure") or "gain"
    lines += [f"heatmap.png shows {MEASURE_TITLES[measure]} (`--measure gain|effective-data|auc` chooses); "
              "curves.png the validation curves at each arm's best lr.", ""]
    runs.write_text(out / "report.md", "\n".join(lines))
    plot_heatmap(exp, summary, out / "heatmap.png", measure)
    plot_curves(results, summary, out / "curves.png")
    if scaling:
        plot_scaling(scaling, out / "transfer-scaling.png")
