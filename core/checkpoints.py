"""Resumable checkpoints: written atomically, and after the validation of their step.

``checkpoints/last.ckpt`` is what ``suite train --resume`` continues from. Lightning writes it
(weights, optimizer, scheduler, loop progress, the training stream's position from
``StreamLoader.state_dict``); ``SuiteModule.on_save_checkpoint`` adds the validation history,
every RNG state and the number of CPU threads: float32 sums come out in a different order with
another count, so a resumed run keeps the count of the run it continues (``continued_threads``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from .files import atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to ``<path>.tmp``, then rename over ``path``: a process killed while saving leaves
    the previous checkpoint whole."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class ResumeCheckpoint(Checkpoint):
    """Save ``dirpath/last.ckpt`` every ``every`` optimizer steps.

    When a validation falls on that step, the save waits for it to end: Lightning does not run a
    step's validation again on resume, so a checkpoint taken before it would lose that entry of
    the history. Being a ``Checkpoint``, Lightning runs it after the other callbacks, so what it
    saves includes their state at that step (``best_checkpoint``'s best score, for one).
    """

    def __init__(self, dirpath: Path, every: int):
        self.path = Path(dirpath) / "last.ckpt"
        self.every = max(1, int(every))
        self.saved_step = -1

    def _due(self, trainer) -> bool:
        step = trainer.global_step
        return step > 0 and step % self.every == 0 and step != self.saved_step

    def _save(self, trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # every rank calls it; rank 0 writes
        self.saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self._due(trainer):
            return
        loop = trainer.fit_loop.epoch_loop
        if loop._should_check_val_fx(trainer.fit_loop._data_fetcher):  # Lightning's own rule, pinned at 2.6
            return  # saved in on_validation_end
        self._save(trainer)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        if self._due(trainer):
            self._save(trainer)


def best_checkpoint(dirpath: Path, primary: str, higher_is_better: bool, weights_only: bool = True,
                    name: str = "best") -> ModelCheckpoint:
    """``dirpath/<name>.ckpt``: the weights at the validation check with the best ``val/<primary>``
    (a joint run keeps one per task: best-<task>.ckpt, ``primary`` "<task>/<metric>").
    ``weights_only=False`` lets callbacks put their weights in it: a moving average's, the weights
    that validation scored."""
    return ModelCheckpoint(dirpath=dirpath, filename=name, monitor=f"val/{primary}", mode="max" if higher_is_better else "min",
                           save_top_k=1, save_weights_only=weights_only, save_last=False, auto_insert_metric_name=False,
                           enable_version_counter=False)


def continued_threads(cfg: dict, resume: Path | None) -> dict:
    """``cfg`` with ``run.threads`` set to the count saved in the checkpoint of the run it resumes,
    when the count is automatic (``--threads`` given on the command line wins)."""
    ckpt = Path(resume) / "checkpoints" / "last.ckpt" if resume is not None else None
    if ckpt is None or cfg["run"].get("threads") not in (None, "auto", 0) or not ckpt.is_file():
        return cfg
    try:
        saved = torch.load(ckpt, map_location="cpu", mmap=True, weights_only=False).get("suite", {}).get("threads")
    except Exception:  # an unreadable checkpoint is reported where the run loads it
        return cfg
    return {**cfg, "run": {**cfg["run"], "threads": saved}} if saved else cfg
