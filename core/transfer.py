"""The transfer experiment: does pretraining on A help B?

For every target task, every arm (training from scratch, or fine-tuning from a source under a
freeze mode) is trained on the same budget, preset and seeds, with its own small learning-rate
sweep; each arm is reported at the learning rate with the best mean validation score, evaluated
on the test split (Rothermel et al. 2021 show why unswept comparisons mislead). Scores are
oriented so that higher is better: metrics where lower is better (bits per byte) are negated.

The output directory holds experiment.yaml, sources/ (source runs, cached by task, preset, budget
and seed), cells/ (one JSON per finished run, which is what makes an interrupted matrix resume),
runs/, and the report: results.json, report.md, heatmap.png, curves.png.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import config as config_mod
from . import runs
from .errors import SuiteError

SCRATCH = "scratch"

# Two-sided 95% Student t critical values by degrees of freedom (1..30); 1.96 beyond.
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
       2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t95(df: float) -> float:
    if df < 1:
        return float("nan")
    return T95[min(int(df), 30) - 1] if df <= 30 else 1.96


@dataclass(frozen=True)
class Cell:
    target: str
    source: str  # SCRATCH, a task name or a weight source
    freeze: str
    lr: float
    seed: int
    arch: str  # the backbone architecture this arm uses: the preset or a weight source's name

    @property
    def arm(self) -> str:
        if self.source == SCRATCH:
            return SCRATCH if self.arch_is_preset else f"{SCRATCH} ({self.arch})"
        return f"{self.source}/{self.freeze}"

    @property
    def arch_is_preset(self) -> bool:
        return not self.arch.startswith("source:")

    @property
    def id(self) -> str:
        arm = self.arm.replace("/", "-").replace(" ", "").replace("(", "@").replace(")", "").replace(":", "-")
        return f"{self.target}__{arm}__lr{self.lr:g}__s{self.seed}"


# -- the experiment config ------------------------------------------------------------------------
def load_experiment(profile: str | None, config_file: str | None, overrides: dict) -> dict:
    exp = {}
    if profile:
        path = config_mod.configs_dir().joinpath("transfer", f"{profile}.yaml")
        if not path.is_file():
            known = sorted(p.name[:-5] for p in config_mod.configs_dir().joinpath("transfer").iterdir() if p.name.endswith(".yaml"))
            raise SuiteError(f"unknown transfer profile {profile!r}; known: {', '.join(known)}")
        exp = config_mod.load_yaml(path)
    if config_file:
        exp = config_mod.merge(exp, config_mod.load_yaml(config_file))
    for key, value in overrides.items():
        if value is not None:
            exp[key] = value
    for key in ("sources", "targets", "freeze", "seeds", "lrs"):
        if isinstance(exp.get(key), str):
            exp[key] = [v.strip() for v in exp[key].split(",") if v.strip()]
    exp["seeds"] = [int(s) for s in exp["seeds"]]
    exp["lrs"] = [float(x) for x in exp["lrs"]]
    return exp


def expand(exp: dict, registry) -> dict:
    """Resolve "all" in sources/targets and check every name."""
    tasks = registry.all_tasks()
    sources_known = registry.all_weight_sources()
    targets = list(tasks) if exp["targets"] in (["all"], "all") else exp["targets"]
    sources = list(tasks) + list(sources_known) if exp["sources"] in (["all"], "all") else exp["sources"]
    for t in targets:
        registry.task(t)
    for s in sources:
        if s != SCRATCH and s not in tasks and s.partition(":")[0] not in sources_known:
            raise SuiteError(f"unknown source {s!r}: not a task and not a weight source (sources: {', '.join(sources_known) or 'none'})")
    for f in exp["freeze"]:
        if f not in ("none", "backbone", "fpt"):
            raise SuiteError(f"freeze mode must be none, backbone or fpt, not {f!r}")
    return {**exp, "targets": targets, "sources": [s for s in sources if s != SCRATCH]}


def plan(exp: dict, registry) -> list[Cell]:
    tasks = registry.all_tasks()
    cells = []
    for target in exp["targets"]:
        archs = [exp["preset"]]
        arms = []
        for source in exp["sources"]:
            if source == target and exp.get("skip_self", True):
                continue
            arch = exp["preset"] if source in tasks else f"source:{source}"
            if arch not in archs:
                archs.append(arch)
            arms += [(source, f, arch) for f in exp["freeze"]]
        arms = [(SCRATCH, "none", a) for a in archs] + arms
        for source, freeze, arch in arms:
            for lr in exp["lrs"]:
                for seed in exp["seeds"]:
                    cells.append(Cell(target, source, freeze, lr, seed, arch))
    return cells


# -- running ----------------------------------------------------------------------------------------
class Runner:
    def __init__(self, exp: dict, registry, out: Path):
        self.exp, self.registry, self.out = exp, registry, out
        self.data_cache: dict = {}

    def run_config(self, task_name: str, steps: int, seed: int, **extra) -> dict:
        task = self.registry.task(task_name)
        overrides = {
            "backbone.preset": self.exp["preset"], "seed": seed, "trainer.max_steps": steps,
            "trainer.val_check_interval": max(1, steps // int(self.exp.get("evals", 4))),
            "run.checkpoint_every": steps, **self.exp.get("overrides", {}),
            **self.exp.get("task_overrides", {}).get(task_name, {}), **extra,
        }
        cfg = config_mod.resolve(task, overrides=overrides, presets=self.registry.all_presets())
        cfg["optim"]["warmup_steps"] = min(int(cfg["optim"]["warmup_steps"]), max(1, steps // 10))
        return cfg

    def quietly_train(self, task_name: str, cfg: dict, log: Path) -> Path:
        from .train import train

        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            return train(self.registry.task(task_name), cfg, self.registry, progress=False, data_cache=self.data_cache)

    def source_run(self, source: str, seed: int) -> str:
        """A task source is trained once per (task, preset, budget, seed) and reused."""
        if source not in self.registry.all_tasks():
            return source  # a weight source: --init-from NAME
        steps = int(self.exp["source_steps"])
        name = f"{source}-{self.exp['preset']}-{steps}steps-s{seed}"
        path = self.out / "sources" / source / name
        if (path / "metrics.json").is_file():
            return str(path)
        shutil.rmtree(path, ignore_errors=True)  # left half-done by an interrupted matrix
        cfg = self.run_config(source, steps, seed, **{"run.root": str(self.out / "sources"), "run.name": name})
        self.quietly_train(source, cfg, self.out / "logs" / f"source-{name}.log")
        return str(path)

    def arch_backbone(self, arch: str) -> dict | None:
        if arch.startswith("source:"):
            spec = arch[len("source:"):]
            return {"preset": spec.partition(":")[0], **runs.load_source(spec, self.registry).backbone}
        return None

    def run_cell(self, cell: Cell) -> dict:
        extra = {"optim.lr": cell.lr, "run.root": str(self.out / "runs"), "run.name": cell.id}
        if cell.source != SCRATCH:
            extra["init.from"] = self.source_run(cell.source, cell.seed)
            extra["init.freeze"] = cell.freeze
        cfg = self.run_config(cell.target, int(self.exp["target_steps"]), cell.seed, **extra)
        if cell.source == SCRATCH and not cell.arch_is_preset:
            cfg["backbone"] = {**cfg["backbone"], **self.arch_backbone(cell.arch)}
        shutil.rmtree(self.out / "runs" / cell.target / cell.id, ignore_errors=True)
        start = time.time()
        run_dir = self.quietly_train(cell.target, cfg, self.out / "logs" / f"{cell.id}.log")
        m = json.loads((run_dir / "metrics.json").read_text())
        sign = 1.0 if m["higher_is_better"] else -1.0
        primary = m["primary"]
        return {
            **asdict(cell), "arm": cell.arm, "metric": primary, "higher_is_better": m["higher_is_better"],
            "val": sign * m["splits"]["val"][primary], "test": sign * m["splits"]["test"][primary],
            "raw_test": m["splits"]["test"][primary],
            "curve": [[h["step"], sign * h[primary]] for h in m["history"] if primary in h],
            "init": m.get("init"), "seconds": round(time.time() - start, 1), "run_dir": str(run_dir),
            "config": cfg,
        }


def cell_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.id}.json"


def run_experiment(exp: dict, registry, out: Path, progress: bool = True) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .train import quiet_lightning

    quiet_lightning()
    exp = expand(exp, registry)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.yaml").write_text(config_mod.dump(exp))
    cells = plan(exp, registry)
    done = [c for c in cells if cell_path(out, c).is_file()]
    todo = [c for c in cells if not cell_path(out, c).is_file()]
    print(f"transfer: {len(exp['targets'])} targets x {len(cells) // max(1, len(exp['targets']))} runs each = "
          f"{len(cells)} runs; {len(done)} already finished, {len(todo)} to go; output {out}")
    runner = Runner(exp, registry, out)
    (out / "cells").mkdir(exist_ok=True)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn()]
    with Progress(*columns, disable=not progress) as bar:
        job = bar.add_task("transfer", total=len(todo))
        for cell in todo:
            bar.update(job, description=f"{cell.target} <- {cell.arm} lr={cell.lr:g} seed={cell.seed}")
            result = runner.run_cell(cell)
            tmp = cell_path(out, cell).with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1))
            os.replace(tmp, cell_path(out, cell))  # a cell is finished only once its JSON is complete
            bar.advance(job)
    results = [json.loads(cell_path(out, c).read_text()) for c in cells]
    summary = summarize(results)
    write_report(exp, results, summary, out)
    return summary


# -- statistics and the report ------------------------------------------------------------------------
def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval (Student t)."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, float("nan")
    return m, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Difference of means a - b and the half-width of its 95% interval (Welch)."""
    d = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return d, float("nan")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, 0.0
    df = (va + vb) ** 2 / ((va ** 2) / (len(a) - 1) + (vb ** 2) / (len(b) - 1))
    return d, t95(df) * se


def summarize(results: list[dict]) -> dict:
    """Per target, per arm: the best learning rate by mean validation score, its test scores over
    seeds, the mean and 95% interval, and the gain over scratch of the same architecture."""
    summary: dict = {}
    by_target: dict = {}
    for r in results:
        by_target.setdefault(r["target"], {}).setdefault(r["arm"], []).append(r)
    for target, arms in by_target.items():
        rows = {}
        for arm, rs in arms.items():
            by_lr: dict = {}
            for r in rs:
                by_lr.setdefault(r["lr"], []).append(r)
            best_lr = max(by_lr, key=lambda lr: statistics.fmean(r["val"] for r in by_lr[lr]))
            best = sorted(by_lr[best_lr], key=lambda r: r["seed"])
            mean, ci = mean_ci([r["test"] for r in best])
            rows[arm] = {
                "arm": arm, "source": best[0]["source"], "freeze": best[0]["freeze"], "arch": best[0]["arch"],
                "best_lr": best_lr, "test": [r["test"] for r in best], "mean": mean, "ci95": ci,
                "val_by_lr": {str(lr): statistics.fmean(r["val"] for r in v) for lr, v in sorted(by_lr.items())},
                "metric": best[0]["metric"], "higher_is_better": best[0]["higher_is_better"],
            }
        for arm, row in rows.items():
            base = next(r for r in rows.values() if r["source"] == SCRATCH and r["arch"] == row["arch"])
            gain, ci = welch(row["test"], base["test"])
            row.update(baseline=base["arm"], gain=gain, gain_ci95=ci,
                       distinguishable=bool(row["source"] != SCRATCH and not math.isnan(ci) and abs(gain) > ci))
        summary[target] = rows
    return summary


def fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def write_report(exp: dict, results: list[dict], summary: dict, out: Path) -> None:
    runs.write_json(out / "results.json", {"experiment": exp, "summary": summary, "runs": results})
    lines = [
        f"# Transfer report ({exp.get('profile', 'custom')} profile)", "",
        f"Backbone preset `{exp['preset']}`; every arm: {exp['target_steps']} steps on the target, seeds "
        f"{', '.join(map(str, exp['seeds']))}, learning-rate sweep {', '.join(f'{lr:g}' for lr in exp['lrs'])} "
        f"(each arm reported at its best mean validation score); task sources pretrained for "
        f"{exp['source_steps']} steps. Test scores, mean and 95% interval over seeds. **Higher is better "
        "everywhere**: metrics where lower is better (bits per byte) are negated. A gain is "
        "*distinguishable* when the 95% Welch interval of the difference from scratch excludes zero.", "",
    ]
    for target, rows in summary.items():
        metric = next(iter(rows.values()))
        name = metric["metric"] if metric["higher_is_better"] else f"-{metric['metric']}"
        lines += [f"## {target} ({name})", "",
                  "| arm | best lr | test mean | 95% interval | gain over scratch | distinguishable |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in sorted(rows.values(), key=lambda r: (r["source"] != SCRATCH, -r["mean"])):
            gain = "—" if row["source"] == SCRATCH else f"{row['gain']:+.4f} ± {fmt(row['gain_ci95'])}"
            dist = "—" if row["source"] == SCRATCH else ("yes" if row["distinguishable"] else "no")
            lines.append(f"| {row['arm']} | {row['best_lr']:g} | {fmt(row['mean'])} | ± {fmt(row['ci95'])} | {gain} | {dist} |")
        lines.append("")
    (out / "report.md").write_text("\n".join(lines))
    plot_heatmap(exp, summary, out / "heatmap.png")
    plot_curves(results, summary, out / "curves.png")


def noise_units(gain: float, ci: float) -> float:
    """A gain in units of its 95% half-width, clipped to [-2, 2]; 0 when there is no interval."""
    if math.isnan(ci):
        return 0.0
    if ci == 0:
        return 0.0 if gain == 0 else math.copysign(2.0, gain)
    return max(-2.0, min(2.0, gain / ci))


def plot_heatmap(exp: dict, summary: dict, path: Path) -> None:
    """Sources x targets, one panel per freeze mode, each cell annotated with the gain over scratch.
    Targets have different metrics, so the colour is unit-free: the gain divided by the half-width
    of its 95% interval, clipped to [-2, 2] (beyond +-1 the gain is distinguishable from noise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    targets = list(summary)
    sources = list(exp["sources"])
    freezes = exp["freeze"]
    labels = []
    for t in targets:
        row = next(iter(summary[t].values()))
        labels.append(f"{t}\n({'' if row['higher_is_better'] else '-'}{row['metric']})")
    fig, axes = plt.subplots(1, len(freezes), figsize=(1.6 + 1.4 * len(targets) * len(freezes), 1.4 + 0.55 * len(sources)),
                             squeeze=False)
    for ax, freeze in zip(axes[0], freezes):
        rows = [[summary[t].get(f"{s}/{freeze}") for t in targets] for s in sources]
        shade = np.array([[np.nan if r is None else noise_units(r["gain"], r["gain_ci95"]) for r in row] for row in rows])
        ax.imshow(shade, cmap="RdBu", vmin=-2, vmax=2, aspect="auto")
        for i, row in enumerate(rows):
            for j, r in enumerate(row):
                text = "—" if r is None else f"{r['gain']:+.3f}" + ("*" if r["distinguishable"] else "")
                dark = r is not None and abs(shade[i, j]) > 1.2
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
        ax.set_xticks(range(len(targets)), labels, fontsize=8)
        ax.set_yticks(range(len(sources)), sources)
        ax.set_title(f"gain over scratch, freeze={freeze}", fontsize=9)
        ax.set_xlabel("target")
    axes[0][0].set_ylabel("source")
    fig.suptitle("Transfer: test score gain over scratch (higher is better; * = 95% interval excludes 0;\n"
                 "colour: gain / half-width of its 95% interval, clipped to +-2)", fontsize=9)
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
