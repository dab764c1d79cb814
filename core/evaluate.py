"""Evaluating a run's module on its splits: the last weights, the best checkpoint(s), the printed tables."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from . import joint
from .data import SuiteDataModule
from .fitting import make_trainer
from .module import SuiteModule


def evaluate_module(module: SuiteModule, dm: SuiteDataModule, cfg: dict, progress: bool = True,
                    trainer: pl.Trainer | None = None, splits: list[str] | None = None) -> dict:
    """Metrics on "val" and every "test*" split (or ``splits``), with the module as it is. ``trainer``:
    the one that trained it (under DDP every rank evaluates its part); by default a new one-device Trainer."""
    module.test_splits = dm.eval_splits = list(splits or dm.all_splits)
    if trainer is None:
        trainer = make_trainer({**cfg, "trainer": {**cfg["trainer"], "devices": 1, "strategy": "auto", "num_nodes": 1}},
                               None, progress=progress)
    trainer.test(module, datamodule=dm, verbose=False)
    return {s: module.results[s] for s in module.test_splits}


def evaluate_best(module: SuiteModule, dm: SuiteDataModule, cfg: dict, trainer: pl.Trainer, progress: bool,
                  last: dict) -> dict | None:
    """{"step", "splits"} of checkpoints/best.ckpt, the best validation check: evaluated when it is
    not the last step (the module is left at its weights), else ``last``, the run's own metrics."""
    best = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    if best is None or not best.best_model_path or not Path(best.best_model_path).is_file():
        return None
    state = torch.load(best.best_model_path, map_location="cpu", weights_only=False)  # this run's own file
    if state["global_step"] == trainer.global_step:
        return {"step": trainer.global_step, "splits": last}
    module.load_state_dict(state["state_dict"])
    return {"step": state["global_step"], "splits": evaluate_module(module, dm, cfg, progress, trainer=trainer)}


def evaluate_joint_best(module, dm, cfg: dict, trainer: pl.Trainer, progress: bool, last: dict) -> dict | None:
    """{task: {"step", "splits"}} of each task's checkpoints/best-<task>.ckpt, its splits evaluated
    with those weights (``last``, the run's own metrics, where the best is the last step); the module
    is left at the weights of the last one loaded."""
    best = {}
    for c in trainer.callbacks:
        if not isinstance(c, ModelCheckpoint) or not c.best_model_path or not Path(c.best_model_path).is_file():
            continue
        name = Path(c.best_model_path).stem.removeprefix("best-")
        own = [s for s in dm.all_splits if joint.split_name(s)[0] == name]
        state = torch.load(c.best_model_path, map_location="cpu", weights_only=False)  # this run's own file
        if state["global_step"] == trainer.global_step:
            splits = {s: last[s] for s in own}
        else:
            module.load_state_dict(state["state_dict"])
            splits = evaluate_module(module, dm, cfg, progress, trainer=trainer, splits=own)
        best[name] = {"step": state["global_step"], "splits": {joint.split_name(s)[1]: v for s, v in splits.items()}}
    return best or None


def print_results(results: dict, primary: str) -> None:
    from rich.console import Console
    from rich.table import Table

    names = sorted({k for m in results.values() for k in m}, key=lambda k: (k != primary, k))
    table = Table("split", *names)
    for split, m in results.items():
        table.add_row(split, *(f"{m[k]:.4f}" if k in m else "" for k in names))
    Console().print(table)


def print_joint_results(results: dict, primaries: dict[str, str]) -> None:
    """One table per task, its primary metric first."""
    for n, primary in primaries.items():
        print_results({s: v for s, v in results.items() if joint.split_name(s)[0] == n}, primary)
