"""Causal language modelling: predict every next token; report bits per byte and perplexity.

Batches are ``LanguageModelBatch`` (batches.py): ``targets`` is the next token at each position,
and ``n_bytes`` (optional) how many bytes of the original text the scored targets stand for.

Bits per byte (total negative log-likelihood in bits / bytes of text covered) compares models
whatever their tokenizer: a byte-level model and a subword model are scored on the same text.
Perplexity is per token, so it only compares models with the same tokenizer.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .generation import IGNORE
from .batches import LanguageModelBatch
from .objective import Objective, metric_collection, sum_metric


@torch.no_grad()
def sample(model, ids: torch.Tensor, max_new: int, *, temperature: float = 1.0, top_k: int | None = None,
           stop: int | None = None, context: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Continue ``ids`` (1, T) by sampling ``max_new`` tokens (temperature 0 is greedy; top_k keeps
    the k likeliest). The model sees the last ``context`` tokens (the length it was trained on;
    default the backbone's max_len). Returns the new tokens (1, n)."""
    context = min(context or model.backbone.cfg.max_len, model.backbone.cfg.max_len)
    seq = ids
    for _ in range(max_new):
        logits = model({"inputs": seq[:, -context:]})[:, -1].float()  # (1, V)
        if temperature <= 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, min(int(top_k), logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(logits, -1), 1, generator=generator)
        seq = torch.cat([seq, nxt], 1)
        if stop is not None and int(nxt) == stop:
            break
    return seq[:, ids.shape[1]:]


class LanguageModel(Objective):
    """Next-token cross-entropy; bits per byte (primary), perplexity and loss (nats per token)."""

    primary = "bits_per_byte"
    higher_is_better = False
    batch = LanguageModelBatch

    def make_metrics(self):
        return metric_collection({"nll": sum_metric(), "tokens": sum_metric(), "bytes": sum_metric()})

    def loss(self, model, batch):
        logits = model(batch)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten(), ignore_index=IGNORE)

    def evaluate(self, model, batch, split):
        logits = model(batch)
        targets = batch["targets"]
        m = self.metrics(split, logits.device)
        m["nll"].update(F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum"))
        m["tokens"].update((targets != IGNORE).sum())
        if "n_bytes" in batch:
            m["bytes"].update(batch["n_bytes"].sum())

    def compute(self, split):
        if split not in self.splits:
            return {}
        v = {k: float(x) for k, x in self.splits[split].compute().items()}
        self.splits[split].reset()
        tokens = max(v["tokens"], 1.0)
        out = {"loss": v["nll"] / tokens, "perplexity": math.exp(min(v["nll"] / tokens, 50.0))}
        if v["bytes"] > 0:
            out["bits_per_byte"] = v["nll"] / math.log(2) / v["bytes"]
        return out
