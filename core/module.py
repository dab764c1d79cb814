"""The LightningModule: tokens -> adapter -> backbone -> head -> objective.

It owns optimisation and the steps; devices, precision, accumulation and checkpointing belong
to the Trainer.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from . import joint
from .backbone import Backbone, BackboneConfig
from .errors import SuiteError
from .freeze import FREEZE_MODES, freeze_backbone  # noqa: F401  (FREEZE_MODES: importable as suite.module.FREEZE_MODES too)


class TrainedModule(pl.LightningModule):
    """What every suite LightningModule shares, whatever sits around its ``backbone``: the optimiser and
    schedule, a check that the loss is finite, freezing, and the checkpoint's history and RNG states."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.results: dict[str, dict] = {}  # split -> metrics of the latest evaluation
        self.artifacts: dict[str, dict] = {}
        self.history: list[dict] = []  # validation metrics at every check, with the step
        self._rng_to_restore: dict | None = None  # from a checkpoint, applied before the next training step

    def check_finite(self, loss: torch.Tensor, task: str) -> None:
        bad = not bool(torch.isfinite(loss.detach()))
        if self.trainer.world_size > 1:  # every rank stops together, or DDP hangs
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            raise NonFiniteLoss(task, self.global_step, float(loss.detach()))

    def on_train_batch_start(self, batch, batch_idx):
        if self._rng_to_restore is not None:  # resumed: the random state the interrupted run had here
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    # -- checkpoints: what Lightning does not keep by itself ---------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["suite"] = {"history": self.history, "rng": rng_state(), "threads": torch.get_num_threads()}

    def on_load_checkpoint(self, checkpoint):
        saved = checkpoint.get("suite", {})
        self.history = list(saved.get("history", self.history))
        self._rng_to_restore = saved.get("rng")

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.cfg["optim"]
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o["lr"], betas=tuple(o["betas"]),
        )
        # Optimizer steps of the whole run, whether it is set by max_steps or max_epochs, and
        # after gradient accumulation and the number of devices (Lightning computes it).
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise SuiteError("the training data has no length, so max_epochs cannot set the schedule; set --trainer.max_steps")
        total = max(1, int(total))
        warmup, floor = min(int(o["warmup_steps"]), total), float(o["min_lr_ratio"])

        def factor(step):  # step 0 is the first optimizer step; the last one is total - 1
            if step < warmup:
                return (step + 1) / warmup
            if o["schedule"] == "constant":
                return 1.0
            progress = min(1.0, (step - warmup + 1) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- freezing ----------------------------------------------------------------------------
    def freeze_backbone(self, mode: str) -> int:
        """Freeze backbone parameters for ``mode`` (suite.freeze); returns how many backbone tensors still train."""
        return freeze_backbone(self.backbone, mode)


class SuiteModule(TrainedModule):
    """The LightningModule of every run: a set of tasks sharing one backbone.

    ``SuiteModule(task, tokenizer, cfg)`` is the set of one: the task's adapter, head and objective
    are the module's own (state dict ``backbone.``, ``adapter.``, ``head.``) and it trains on the
    task's batches as they come. ``SuiteModule({name: task}, {name: tokenizer}, cfg)`` with a joint
    run's config (core/joint.py) is the set of several: ``members[name]`` is each task's module of
    one on this module's backbone (``members.<name>.adapter.``), and a training batch is
    ``(name, batch)``. Either way ``members`` maps each task to the module that runs it, and the steps
    below are written once over it; results, history and logs name a task's splits and metrics with
    ``joint.prefix`` (nothing for a set of one, ``<task>/`` otherwise).

    ``backbone``: one shared with other modules (the members of a set); it is then not a submodule
    of this one, so it appears once in the set's parameters and state dict."""

    def __init__(self, task, tokenizer, cfg: dict, backbone: Backbone | None = None):
        super().__init__(cfg)
        if isinstance(task, dict) and len(task) == 1:  # a set of one, given as a set
            (name, task), = task.items()
            tokenizer = tokenizer[name] if isinstance(tokenizer, dict) else tokenizer
        bcfg = BackboneConfig.from_dict(cfg["backbone"])
        several = isinstance(task, dict)
        if not several:  # built in this order, so a seed gives the weights it always gave
            self.task, self.tokenizer = task, tokenizer
            self.adapter = task.build_adapter(tokenizer, bcfg.d_model, cfg)
        if backbone is None:
            self.backbone = Backbone(bcfg)
        else:
            object.__setattr__(self, "backbone", backbone)  # a plain attribute, not a registered submodule
        if several:
            self.members = nn.ModuleDict({n: SuiteModule(t, tokenizer[n], joint.task_config(cfg, n), backbone=self.backbone)
                                          for n, t in task.items()})
        else:
            self.head = task.build_head(tokenizer, bcfg.d_model, cfg)
            if hasattr(self.head, "tie"):  # an output layer that is the target embedding (suite.OutputHead)
                self.head.tie(self.adapter)
            self.objective = task.objective(task, tokenizer, cfg)
            self.mask = task.mask_for(cfg)  # causal | bidirectional | prefix
            object.__setattr__(self, "members", {task.name: self})  # itself: not a submodule
        self.names = list(self.members)
        self.test_splits: list[str] = [joint.prefix(self.names, n) + "test" for n in self.names]
        self.task_steps = dict.fromkeys(self.names, 0)  # training batches of each task so far
        self.last_loss: dict[str, float] = {}

    def forward(self, batch: dict) -> torch.Tensor:
        if self.backbone.encoder_decoder:  # source -> encoder, target -> decoder (suite.Seq2SeqBatch)
            return self.decode(batch["inputs"], *self.encode(batch), padding=batch.get("padding"), positions=batch.get("positions"))
        x = self.adapter(batch["inputs"])  # (B, T, d)
        positions = batch.get("positions")  # the task's own numbering, possibly longer than T (decoding)
        if positions is not None:
            positions = positions[:, : x.shape[1]]
        h = self.backbone(x, self.mask, prefix_len=batch.get("prefix_len"), padding=batch.get("padding"),
                          positions=positions)
        return self.head(h, batch)

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """An encoder-decoder's encoder over ``batch["source"]`` (through ``adapter.source``, or the
        adapter itself where one embeds both sides): (memory (B, S, d), its padding (B, S) or None)."""
        x = getattr(self.adapter, "source", self.adapter)(batch["source"])
        padding = batch.get("source_padding")
        return self.backbone.encode(x, padding=padding, positions=batch.get("source_positions")), padding

    def decode(self, inputs: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor | None = None, *,
               padding: torch.Tensor | None = None, positions: torch.Tensor | None = None, cache=None) -> torch.Tensor:
        """Target ids (B, T) over the encoder's ``memory`` -> the head's logits (B, T, V); with ``cache``
        (``backbone.new_cache()``) ``inputs`` are the tokens after those already read."""
        y = getattr(self.adapter, "target", self.adapter)(inputs)
        if positions is not None and cache is None:
            positions = positions[:, : inputs.shape[1]]
        h = self.backbone.decode(y, memory, memory_padding=memory_padding, padding=padding, positions=positions, cache=cache)
        return self.head(h, {"padding": padding})

    def callbacks(self) -> list:
        """The Lightning callbacks of the run: a task's own (``Task.callbacks``) where it is trained alone."""
        return self.task.callbacks(self.cfg) if len(self.names) == 1 else []

    # -- steps -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        name, batch = batch if len(self.names) > 1 else (self.names[0], batch)
        member = self.members[name]
        loss = member.objective.loss(member, batch)
        self.check_finite(loss, name)
        self.task_steps[name] += 1
        self.log("train/loss", loss, prog_bar=True, batch_size=1)
        if len(self.names) > 1:  # every task's latest loss at every logged step: one curve per task in the logs
            self.last_loss[name] = float(loss.detach())
            self.log_dict({f"train/{n}/loss": v for n, v in self.last_loss.items()}, batch_size=1)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        member = self.members[self.names[dataloader_idx]]
        member.objective.evaluate(member, batch, "val")

    def on_validation_epoch_end(self):
        for name in self.names:
            self._finish_split(name, "val")
        if not self.trainer.sanity_checking:
            self.history.append({"step": self.global_step, **{
                joint.prefix(self.names, n) + k: v for n in self.names
                for k, v in self.results[joint.prefix(self.names, n) + "val"].items()}})

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        name, split = joint.split_of(self.names, self.test_splits[dataloader_idx])
        self.members[name].objective.evaluate(self.members[name], batch, split)

    def on_test_epoch_end(self):
        for key in self.test_splits:
            self._finish_split(*joint.split_of(self.names, key))

    def _finish_split(self, name: str, split: str):
        objective, prefix = self.members[name].objective, joint.prefix(self.names, name)
        self.artifacts[prefix + split] = objective.artifacts(split)
        values = objective.compute(split)
        self.results[prefix + split] = values
        # The values are already reduced over all ranks (torchmetrics syncs on compute); sync_dist
        # keeps Lightning from averaging anything else and says so.
        self.log_dict({f"{split}/{prefix}{k}": v for k, v in values.items()}, prog_bar=split == "val" and not prefix,
                      add_dataloader_idx=False, sync_dist=True)

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)
        checkpoint["suite"]["task_steps"] = dict(self.task_steps)

    def on_load_checkpoint(self, checkpoint):
        super().on_load_checkpoint(checkpoint)
        self.task_steps.update(checkpoint.get("suite", {}).get("task_steps", {}))


class NonFiniteLoss(SuiteError):
    def __init__(self, task: str, step: int, value: float):
        super().__init__(f"task {task}: the training loss is {value} at step {step}; try a lower --optim.lr, "
                         f"--trainer.gradient_clip_val 1.0 or --trainer.precision 32-true")


def rng_state() -> dict:
    """Every random number generator a training step may draw from (dropout, augmentation, sampling)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    # Tensors, numbers and lists only: loadable with torch.load(weights_only=True).
    state = {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
             "python": [version, list(internal), py_gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(internal), py_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
