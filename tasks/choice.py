"""Choice among legal options: the head scores a fixed set of options (chess moves, game actions),
only some of which are allowed in each sample, and one or several of them are right.

Batches are ``ChoiceBatch`` (batches.py): ``label``, the index of the right option, and
optionally ``legal`` (the allowed options; predictions never pick others), ``correct`` (every
right option: several mating moves, ...; overrides label) and ``soft`` (a target distribution over
the options, e.g. from an engine's evaluation of several moves: the loss is then the cross-entropy
to it, while the metrics still score ``label`` / ``correct``).

Training uses plain cross-entropy over all options by default, so the model also learns which
options are legal (``model.mask_loss: true`` masks illegal options out of the loss instead).
Metrics: ``accuracy`` of the best legal option (top-1), ``top3_accuracy``, ``legal_rate`` (how
often the unmasked argmax is a legal option; left out with ``mask_loss``, which does not learn
legality) and the loss (masked with ``mask_loss``, as trained).
"""
from __future__ import annotations

import torch

from .batches import ChoiceBatch
from .objective import Objective, metric_collection, mean_metric


def mask_options(logits: torch.Tensor, legal: torch.Tensor | None) -> torch.Tensor:
    """Logits with every option that is not legal set to -inf (rows with no legal option are kept)."""
    if legal is None:
        return logits
    legal = legal | ~legal.any(-1, keepdim=True)
    return logits.masked_fill(~legal, float("-inf"))


def choice_loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    """Cross-entropy of the right option, or of the set of right options (-log of their total
    probability), or to the ``soft`` target distribution where the batch has one."""
    soft = batch.get("soft")
    if soft is not None:
        return -(soft * torch.log_softmax(logits.float(), -1).clamp_min(-1e4)).sum(-1).mean()
    log_z = torch.logsumexp(logits, -1)
    correct = batch.get("correct")
    if correct is None:
        right = logits.gather(1, batch["label"][:, None])[:, 0]
    else:
        right = torch.logsumexp(logits.masked_fill(~correct, float("-inf")), -1)
    return (log_z - right).mean()


class Choice(Objective):
    primary = "accuracy"
    batch = ChoiceBatch

    def __init__(self, task, tokenizer, cfg):
        super().__init__(task, tokenizer, cfg)
        self.mask_loss = bool(cfg.get("model", {}).get("mask_loss", False))

    def make_metrics(self):
        names = ["accuracy", "top3_accuracy", "loss"] + ([] if self.mask_loss else ["legal_rate"])
        return metric_collection({name: mean_metric() for name in names})

    def loss(self, model, batch):
        logits = model(batch)
        if self.mask_loss:
            logits = mask_options(logits, batch.get("legal"))
        return choice_loss(logits, batch)

    @staticmethod
    def right(batch: dict, picks: torch.Tensor) -> torch.Tensor:
        """(B, k) picked option indices -> (B, k) bool, whether each is a right option."""
        if batch.get("correct") is not None:
            return batch["correct"].gather(1, picks)
        return picks == batch["label"][:, None]

    def evaluate(self, model, batch, split):
        logits = model(batch)
        m = self.metrics(split, logits.device)
        legal = batch.get("legal")
        masked = mask_options(logits, legal)
        top = masked.topk(min(3, logits.shape[-1]), -1).indices  # (B, 3)
        hits = self.right(batch, top)
        m["accuracy"].update(hits[:, 0].float())
        m["top3_accuracy"].update(hits.any(1).float())
        if legal is not None and not self.mask_loss:
            m["legal_rate"].update(legal.gather(1, logits.argmax(-1, keepdim=True))[:, 0].float())
        m["loss"].update(choice_loss(masked if self.mask_loss else logits, batch), weight=len(logits))

    def compute(self, split):
        return {k: v for k, v in super().compute(split).items() if v == v}  # no legal_rate without legal masks
