"""What sits on either side of the backbone for text: the adapter (an embedding table) and the LM head."""
from __future__ import annotations

import torch
from torch import nn

import suite


def make_adapter(tokenizer, d_model: int) -> nn.Module:
    # No padding_idx: with an imported vocabulary id 0 is a real token (GPT-2's "!"); padding is masked.
    return suite.EmbeddingAdapter(tokenizer.vocab_size, d_model, padding_idx=None)


class LMHead(nn.Module):
    """Hidden states (B, T, d) -> next-token logits (B, T, vocab). No bias, so that imported
    weights can start it from the (tied) word embeddings, as GPT-2's own output layer is."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.lm = nn.Linear(d_model, vocab_size, bias=False)
        nn.init.normal_(self.lm.weight, std=0.02)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.lm(hidden)
