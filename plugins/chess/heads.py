"""The policy head: hidden states of the 64 square tokens -> logits over the 1968-move vocabulary.

A move's logit is the scaled dot product of a query from its from-square and a key from its
to-square (the attention policy of Leela Chess Zero), plus a term read from the to-square for
the promotion piece (none, q, r, b, n). Every move is scored from the two squares it joins, which
a small model learns far faster than one flat 1968-way projection of a pooled vector.
Legal-move masking is not done here: the "choice" objective and the players mask the logits.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .tokenizer import MOVES, SQUARES

PROMOTIONS = "_qrbn"


def move_tables() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(from square, to square, promotion index) of every move id, as long tensors of 1968."""
    frm = [(ord(m[0]) - 97) + 8 * (int(m[1]) - 1) for m in MOVES]
    to = [(ord(m[2]) - 97) + 8 * (int(m[3]) - 1) for m in MOVES]
    promo = [PROMOTIONS.index(m[4]) if len(m) == 5 else 0 for m in MOVES]
    return torch.tensor(frm), torch.tensor(to), torch.tensor(promo)


class PolicyHead(nn.Module):
    """(B, T, d) -> (B, 1968) move logits."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.promotion = nn.Linear(d_model, len(PROMOTIONS))
        frm, to, promo = move_tables()
        self.register_buffer("pair", frm * 64 + to, persistent=False)  # index into the 64 x 64 grid
        self.register_buffer("to_square", to, persistent=False)
        self.register_buffer("promo", promo, persistent=False)
        self.scale = 1.0 / math.sqrt(d_model)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        h = self.norm(hidden[:, SQUARES])  # (B, 64, d), square a1..h8
        grid = self.query(h) @ self.key(h).transpose(1, 2) * self.scale  # (B, 64 from, 64 to)
        pairs = grid.flatten(1)[:, self.pair]  # (B, 1968)
        promo = self.promotion(h)[:, self.to_square, self.promo]  # (B, 1968): the to-square's promotion term
        return pairs + promo
