"""Fitting a run with Lightning's Trainer: the Trainer and its callbacks (moving average, checkpoints,
progress, loggers), the run directory every process writes to, a failure in one line."""
from __future__ import annotations

import difflib
import inspect
import logging
import os
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from . import joint, runs
from .checkpoints import AtomicCheckpointIO, ResumeCheckpoint, best_checkpoint
from .loggers import make_loggers
from .errors import SuiteError
from .module import NonFiniteLoss
from .progress import progress_bar

RUN_DIR_ENV = "SUITE_RUN_DIR"  # the run directory, passed by rank 0 to the processes Lightning launches


def quiet_lightning() -> None:
    """Keep Lightning's console output to what a user acts on."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "pytorch_lightning.accelerators.cuda", "lightning_fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*LitLogger.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")  # Lightning 2.6 on torch 2.11
    warnings.filterwarnings("ignore", message=r".*Your `IterableDataset` has `__len__` defined.*")  # suite.Stream: exact
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")  # steps, not epochs, are logged


def launch_rank() -> int:
    """This process's global rank as the launcher set it (Lightning, torchrun, SLURM), before the Trainer starts."""
    return rank_zero_only.rank


def say(*args) -> None:
    """print, on rank 0 only."""
    if launch_rank() == 0:
        print(*args)


class MovingAverage(EMAWeightAveraging):
    """Lightning's EMAWeightAveraging from step ``update_starting_at_step`` on. Before its first update
    the average is still the untrained model, so until then validation and the end of a run use the
    weights as they are (a run shorter than the start keeps its own weights).

    The average is part of the resumable state (Lightning's ``averaging_state``). The run's final
    checkpoint keeps the trained weights beside the average it ends with, so a finished run
    continued with more steps goes on from its own weights, not from the average."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._trained: dict | None = None  # the weights as trained, once on_train_end put the average in their place

    def on_validation_epoch_start(self, trainer, pl_module):
        if self._latest_update_step > 0:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module):
        if self._latest_update_step > 0:
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if self._latest_update_step > 0:
            self._trained = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if self._latest_update_step == 0:  # no average yet: its first update copies the weights
            return
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._trained is not None and "current_model_state" in checkpoint:
            checkpoint["current_model_state"] = self._trained

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        if "averaging_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def make_trainer(cfg: dict, run_dir: Path | None, *, progress: bool = True, extra_callbacks=(), objective=None,
                 objectives: dict | None = None) -> pl.Trainer:
    """The Trainer of a run: ``cfg['trainer']`` as Lightning takes it, the CSV log, checkpoints/last.ckpt
    for resuming and, given the run's ``objectives`` by task, checkpoints/best.ckpt at its best
    validation (in a run of several tasks, checkpoints/best-<task>.ckpt at each task's best;
    ``objective``: the one objective of a run of one task)."""
    t = dict(cfg["trainer"])
    accepted = inspect.signature(pl.Trainer).parameters
    for key in t:
        if key not in accepted:
            hint = difflib.get_close_matches(key, list(accepted), n=1)
            raise SuiteError(f"unknown setting --trainer.{key}" + (f"; did you mean --trainer.{hint[0]}?" if hint else ""))
    callbacks = list(extra_callbacks)
    ema = bool(cfg.get("optim", {}).get("ema_decay"))
    if ema:
        callbacks.append(MovingAverage(decay=float(cfg["optim"]["ema_decay"]), update_starting_at_step=int(cfg["optim"].get("ema_from") or 0)))
    if progress:  # TQDM redrawn every 10 steps: Lightning's default Rich bar cost 5-8% of a tiny model's step (bench/)
        callbacks.append(progress_bar(refresh_rate=10))  # plain lines when stdout is not a terminal (progress.py)
    if run_dir is not None:
        objectives = objectives or ({"": objective} if objective is not None else {})
        for task, o in objectives.items():
            prefix = joint.prefix(list(objectives), task)
            callbacks.append(best_checkpoint(run_dir / "checkpoints", prefix + o.primary, o.higher_is_better,
                                             weights_only=not ema, name="best" + (f"-{task}" if prefix else "")))
        callbacks.append(ResumeCheckpoint(run_dir / "checkpoints", int(cfg["run"]["checkpoint_every"])))
    return pl.Trainer(
        **t,
        default_root_dir=str(run_dir) if run_dir else None,
        logger=(make_loggers(cfg, run_dir) or False) if run_dir else False,  # --logger: logs/ of the run
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=run_dir is not None,
        enable_progress_bar=progress,
        enable_model_summary=False,
    )


def shared_run_dir(cfg: dict) -> Path:
    """The run directory: made by rank 0 and handed to every other process of the run.

    Processes that Lightning launches inherit it from rank 0's environment; under SLURM or
    torchrun, where every process starts on its own, the job's id names it."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    job = os.environ.get("SLURM_JOB_ID") if int(os.environ.get("SLURM_NTASKS", "1")) > 1 else None
    job = job or os.environ.get("TORCHELASTIC_RUN_ID")
    if job and not cfg["run"].get("name"):
        cfg = {**cfg, "run": {**cfg["run"], "name": f"job-{job}"}}
    if launch_rank() != 0:
        if not cfg["run"].get("name"):
            raise SuiteError(f"rank {launch_rank()}: no run directory from rank 0; set --run.name for this launcher")
        return Path(cfg["run"]["root"]) / cfg["task"] / cfg["run"]["name"]
    return runs.new_run_dir(cfg)


@contextmanager
def cleaned_up_on_failure(run_dir: Path, fresh: bool):
    """A run that fails before its first checkpoint leaves no directory behind (a fresh one is
    removed); one that fails later keeps its checkpoints and gets error.txt with the reason."""
    try:
        yield
    except BaseException as e:
        if launch_rank() == 0 and run_dir.is_dir():
            if fresh and not (run_dir / "checkpoints" / "last.ckpt").is_file():
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                runs.write_text(run_dir / "error.txt", f"{type(e).__name__}: {e}\n")
        raise


def fit(trainer: pl.Trainer, module, dm, run_dir: Path, ckpt: Path | None) -> float:
    """``trainer.fit`` (from ``ckpt`` when resuming), a failure said in one line, and
    checkpoints/last.ckpt of the final step. Returns the training seconds."""
    start = time.time()
    os.environ[RUN_DIR_ENV] = str(run_dir)  # for the processes a multi-device Trainer launches
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if ckpt else None)
    except NonFiniteLoss as e:
        step = next(c.saved_step for c in trainer.callbacks if isinstance(c, ResumeCheckpoint))
        kept = (f"checkpoints/last.ckpt of step {step} is kept" if step > 0 else
                "checkpoints/last.ckpt is kept" if (run_dir / "checkpoints" / "last.ckpt").is_file() else
                "no checkpoint was written before it")
        raise SuiteError(f"{e}; {kept} in {run_dir}") from None
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
    if trainer.interrupted:
        raise SuiteError(f"training interrupted at step {trainer.global_step}; continue with: suite train --resume {run_dir}")
    train_time = time.time() - start
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt", weights_only=False)  # resumable from the final step
    return train_time
