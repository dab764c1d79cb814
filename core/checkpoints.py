"""Resumable checkpoints: written atomically, and after the validation of their step.

``checkpoints/last.ckpt`` is what ``suite train --resume`` continues from. Lightning writes it
(weights, optimizer, scheduler, loop progress, the training stream's position from
``StreamLoader.state_dict``); ``SuiteModule.on_save_checkpoint`` adds the validation history
and every RNG state.
"""
from __future__ import annotations

import os
from pathlib import Path

from pytorch_lightning.callbacks import Checkpoint, ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to ``<path>.tmp``, then rename over ``path``: a process killed while saving leaves
    the previous checkpoint whole."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


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


def best_checkpoint(dirpath: Path, primary: str, higher_is_better: bool) -> ModelCheckpoint:
    """``dirpath/best.ckpt``: the weights at the validation check with the best primary metric."""
    return ModelCheckpoint(dirpath=dirpath, filename="best", monitor=f"val/{primary}", mode="max" if higher_is_better else "min",
                           save_top_k=1, save_weights_only=True, save_last=False, auto_insert_metric_name=False,
                           enable_version_counter=False)
