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


def best_checkpoints(trainer: pl.Trainer) -> dict[str, Path]:
    """The file of each best checkpoint the run kept, by name: "best" (checkpoints/best.ckpt), a
    joint run's "best-<task>"."""
    paths = [Path(c.best_model_path) for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.best_model_path]
    return {p.stem: p for p in paths if p.is_file()}


def evaluate_checkpoint(path: Path, splits: list[str], module, dm, cfg: dict, trainer: pl.Trainer, progress: bool,
                        last: dict) -> dict:
    """{"step", "splits"} of a best checkpoint: ``splits`` evaluated with its weights (the module is
    left at them), or taken from ``last``, the run's own metrics, when it is the last step."""
    state = torch.load(path, map_location="cpu", weights_only=False)  # this run's own file
    if state["global_step"] == trainer.global_step:
        return {"step": trainer.global_step, "splits": {s: last[s] for s in splits}}
    module.load_state_dict(state["state_dict"])
    return {"step": state["global_step"], "splits": evaluate_module(module, dm, cfg, progress, trainer=trainer, splits=splits)}


def evaluate_best(module: SuiteModule, dm: SuiteDataModule, cfg: dict, trainer: pl.Trainer, progress: bool,
                  last: dict) -> dict | None:
    """{task: {"step", "splits"}} of each best checkpoint the run kept (checkpoints/best.ckpt, in a run
    of several tasks each task's best-<task>.ckpt): that task's splits evaluated with its weights
    (``evaluate_checkpoint``), named as in a run of the task alone."""
    best = {}
    for stem, path in best_checkpoints(trainer).items():
        name = stem.removeprefix("best-") if stem != "best" else module.names[0]
        own = [s for s in dm.all_splits if joint.split_of(module.names, s)[0] == name]
        result = evaluate_checkpoint(path, own, module, dm, cfg, trainer, progress, last)
        best[name] = {**result, "splits": {joint.split_of(module.names, s)[1]: v for s, v in result["splits"].items()}}
    return best or None


def print_results(results: dict, primary: str) -> None:
    from rich.console import Console
    from rich.table import Table

    names = sorted({k for m in results.values() for k in m}, key=lambda k: (k != primary, k))
    table = Table("split", *names)
    for split, m in results.items():
        table.add_row(split, *(f"{m[k]:.4f}" if k in m else "" for k in names))
    Console().print(table)


def print_task_results(results: dict, module: SuiteModule) -> None:
    """One table per task of ``module``'s set, its primary metric first."""
    for n, member in module.members.items():
        print_results({s: v for s, v in results.items() if joint.split_of(module.names, s)[0] == n}, member.objective.primary)
