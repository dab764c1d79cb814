"""Heads: hidden states (B, T, d_model) -> logits. Building blocks for plugins."""
from __future__ import annotations

import torch
from torch import nn


def pool(hidden: torch.Tensor, padding: torch.Tensor | None, how: str) -> torch.Tensor:
    """(B, T, d) -> (B, d): the first token ("cls"), the last one ("last") or the mean of the
    non-padding tokens ("mean")."""
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        return hidden[:, -1]
    if padding is None:
        return hidden.mean(1)
    keep = (~padding).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)


class ClassifierHead(nn.Module):
    """Pooled hidden state -> (B, n_classes) logits."""

    def __init__(self, d_model: int, n_classes: int, pooling: str = "mean"):
        super().__init__()
        self.pooling = pooling
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_classes)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.out(self.norm(pool(hidden, batch.get("padding"), self.pooling)))


class TokenHead(nn.Module):
    """Per-token logits (B, T, vocab_size), for language modelling and generation."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.out(self.norm(hidden))
