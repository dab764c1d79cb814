"""The transfer experiment: does pretraining on A help B?

For every target task, every arm (training from scratch, or fine-tuning from a source under a
adaptation method (full, frozen, fpt, lora, bitfit, orca); for a sequence-to-sequence target, from a source into one side of an encoder-decoder)
is trained on the same budget, preset and seeds, with its own learning-rate sweep; each arm is
reported at its best learning rate, chosen on validation (Rothermel et al. 2021 show why unswept
comparisons mislead). Scores are oriented so that higher is better.

One module per responsibility, each readable on its own:

  plan       the experiment config and the runs it makes (cells and source runs)
  execute    training the runs, locally or on Ray; cells written atomically
  estimate   --dry-run: counts, steps and a calibrated wall-time estimate
  measures   effective data transferred, area under the curve, best validation check
  stats      Student-t and Welch intervals, Welch's test, bootstrap, Holm (scipy)
  summary    cells -> one row per (target, arm) with gains and tests
  scaling    the target-data axis: effective data in target samples and its power law
  report     results.json and report.md
  plots      heatmap.png, curves.png and transfer-scaling.png

The output directory holds experiment.yaml, sources/ (source runs), cells/ (one JSON per
finished target run: what makes an interrupted matrix resume), runs/, logs/, and the report.
"""
from __future__ import annotations

from pathlib import Path

from .. import config as config_mod
from .. import runs
from ..errors import SuiteError
from .execute import Runner, cell_done, cell_path, lock, read_cells, run_local, run_ray, source_done, write_atomic, write_cell
from .estimate import calibrate, dry_run, wall_time
from .measures import (auc, best_val, data_needed, data_transferred, effective_data, first_reach, fit_power_law, fmt_effective,
                       fmt_transferred, mean_curve)
from .plan import (SCRATCH, Cell, SourceRun, counts, executor_of, expand, load_experiment, panel, plan, profile_path, profiles,
                   source_runs)
from .plots import plot_curves, plot_heatmap, plot_scaling
from .report import fmt, write_report
from .scaling import scaling
from .stats import bootstrap_ci, holm, mean_ci, noise_units, welch, welch_test
from .summary import summarize

__all__ = [
    "SCRATCH", "Cell", "SourceRun", "load_experiment", "expand", "plan", "source_runs", "counts", "profiles", "profile_path", "fmt_effective",
    "Runner", "cell_done", "cell_path", "write_cell", "write_atomic", "read_cells", "source_done", "run_local", "run_ray", "lock",
    "calibrate", "wall_time", "dry_run", "mean_curve", "first_reach", "effective_data", "auc", "best_val",
    "mean_ci", "welch", "welch_test", "bootstrap_ci", "holm", "noise_units", "summarize", "write_report", "fmt",
    "data_needed", "data_transferred", "fit_power_law", "fmt_transferred", "scaling", "panel",
    "plot_heatmap", "plot_curves", "plot_scaling", "run_experiment", "default_out",
]

# What a cell means: an output directory holds the cells of one experiment with these settings.
IDENTITY = ("preset", "seq2seq_preset", "source_steps", "target_steps", "steps_by_target", "evals", "overrides", "task_overrides",
            "size_steps")


def default_out(exp: dict) -> Path:
    return Path(exp.get("out") or f"runs/transfer/{exp.get('profile', 'custom')}")


def check_identity(exp: dict, out: Path) -> None:
    """Refuse to mix cells of different experiments in one output directory."""
    path = out / "experiment.yaml"
    if not path.is_file():
        return
    before = config_mod.load_yaml(path, hint="delete it (the finished cells are kept) or give another --out")
    for key in IDENTITY:
        if key in before and before[key] != exp.get(key):
            raise SuiteError(f"{out} holds a matrix with {key} {before[key]!r}, not {exp.get(key)!r}; "
                             "give another --out, or delete it to start over")


def run_experiment(exp: dict, registry, out: Path | None = None, progress: bool = True, *, dry: bool = False,
                   calibrate_steps: int = 20, recalibrate: bool = False, calibrate_command: str | None = None) -> dict:
    """Plan, execute what is not finished, summarise and report; or, with ``dry``, print the plan
    and its estimate. Returns the summary (the dry run's figures with ``dry``)."""
    from ..train import quiet_lightning

    quiet_lightning()
    exp = expand(exp, registry)
    out = Path(out) if out is not None else default_out(exp)
    cells = plan(exp, registry)
    sources = source_runs(exp, cells, registry)
    if dry:
        check_identity(exp, out)
        return dry_run(exp, registry, out, cells, sources, calibrate_steps, recalibrate, command=calibrate_command)
    with lock(out):
        check_identity(exp, out)
        runs.write_text(out / "experiment.yaml", config_mod.dump(exp))
        for stale in (out / "cells").glob(".*.tmp"):  # left by a process killed while writing
            stale.unlink(missing_ok=True)
        todo = [c for c in cells if not cell_done(out, c)]  # a damaged or older cell file: run again, with a warning
        executor, why = executor_of(exp)
        print(f"transfer: {len(exp['targets'])} targets x {len(cells) // max(1, len(exp['targets']))} runs each = "
              f"{len(cells)} runs; {len(cells) - len(todo)} already finished, {len(todo)} to go; "
              f"{len(sources)} source runs; executor {executor} ({why}); output {out}")
        if executor == "ray":
            run_ray(exp, registry, out, todo, sources, progress)
        else:
            run_local(exp, registry, out, todo, progress)
        results = read_cells(out, cells)
        summary = summarize(results, exp)
        write_report(exp, results, summary, out, scaling(summary))
    return summary
