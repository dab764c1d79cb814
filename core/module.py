"""The LightningModule: tokens -> adapter -> backbone -> head -> objective.

It owns optimisation and the steps; devices, precision, accumulation and checkpointing belong
to the Trainer.
"""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from .backbone import Backbone, BackboneConfig
from .errors import SuiteError

FREEZE_MODES = ("none", "backbone", "fpt")


class SuiteModule(pl.LightningModule):
    def __init__(self, task, tokenizer, cfg: dict):
        super().__init__()
        self.task, self.tokenizer, self.cfg = task, tokenizer, cfg
        bcfg = BackboneConfig.from_dict(cfg["backbone"])
        self.adapter = task.build_adapter(tokenizer, bcfg.d_model, cfg)
        self.backbone = Backbone(bcfg)
        self.head = task.build_head(tokenizer, bcfg.d_model, cfg)
        self.objective = task.objective(task, tokenizer, cfg)
        self.test_splits: list[str] = ["test"]
        self.results: dict[str, dict] = {}  # split -> metrics of the latest evaluation
        self.artifacts: dict[str, dict] = {}
        self.history: list[dict] = []  # validation metrics at every check, with the step

    def forward(self, batch: dict) -> torch.Tensor:
        x = self.adapter(batch["inputs"])  # (B, T, d)
        h = self.backbone(x, self.task.mask, prefix_len=batch.get("prefix_len"), padding=batch.get("padding"))
        return self.head(h, batch)

    # -- steps -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        loss = self.objective.loss(self, batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.objective.evaluate(self, batch, "val")

    def on_validation_epoch_end(self):
        self._finish_split("val")
        self.history.append({"step": self.global_step, **self.results["val"]})

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self.objective.evaluate(self, batch, self.test_splits[dataloader_idx])

    def on_test_epoch_end(self):
        for split in self.test_splits:
            self._finish_split(split)

    def _finish_split(self, split: str):
        self.artifacts[split] = self.objective.artifacts(split)
        values = self.objective.compute(split)
        self.results[split] = values
        self.log_dict({f"{split}/{k}": v for k, v in values.items()}, prog_bar=split == "val",
                      add_dataloader_idx=False)

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
        total = max(1, int(self.trainer.max_steps))
        warmup, floor = int(o["warmup_steps"]), float(o["min_lr_ratio"])

        def factor(step):
            if step < warmup:
                return (step + 1) / warmup
            if o["schedule"] == "constant":
                return 1.0
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- freezing ----------------------------------------------------------------------------
    def freeze_backbone(self, mode: str) -> int:
        """Freeze backbone parameters; returns how many tensors stay trainable in the backbone.

        none: everything trains. backbone: the whole backbone is frozen (adapter and head train).
        fpt: attention and MLP weights are frozen; layer norms and positions train, as in the
        Frozen Pretrained Transformer (Lu et al. 2021).
        """
        if mode not in FREEZE_MODES:
            raise SuiteError(f"--freeze must be one of {', '.join(FREEZE_MODES)}, not {mode!r}")
        trainable = 0
        for name, p in self.backbone.named_parameters():
            train = mode == "none" or (mode == "fpt" and (".attn." not in f".{name}" and ".mlp." not in f".{name}"))
            p.requires_grad_(train)
            trainable += train
        return trainable
