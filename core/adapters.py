"""Adapters: tokens -> (B, T, d_model) vectors for the backbone. Building blocks for plugins."""
from __future__ import annotations

import torch
from torch import nn

from .errors import SuiteError


class EmbeddingAdapter(nn.Module):
    """Token ids (B, T) -> embeddings (B, T, d_model)."""

    def __init__(self, vocab_size: int, d_model: int, padding_idx: int | None = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


class PatchAdapter(nn.Module):
    """Patch vectors (B, N, patch_dim) -> (B, N + 1, d_model): a linear projection, a learned
    [CLS] vector in front, and a learned position per patch of a ``grid`` (rows, cols) layout
    (2-D information, as factorised row + column embeddings).

    ``max_len`` (the backbone's) makes a grid that does not fit a clear error up front, naming
    ``what`` is cut into patches and ``fix``, the setting that makes fewer of them."""

    def __init__(self, patch_dim: int, d_model: int, grid: tuple[int, int], max_len: int | None = None,
                 what: str = "the input", fix: str = "use larger patches"):
        super().__init__()
        rows, cols = grid
        if max_len is not None and rows * cols + 1 > max_len:
            raise SuiteError(f"{what} in {rows}x{cols} patches make {rows * cols} + 1 tokens, more than the "
                             f"backbone's max_len {max_len}; {fix}")
        self.grid = tuple(grid)
        self.proj = nn.Linear(patch_dim, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.row = nn.Parameter(torch.randn(self.grid[0], 1, d_model) * 0.02)
        self.col = nn.Parameter(torch.randn(1, self.grid[1], d_model) * 0.02)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        B = patches.shape[0]
        pos = (self.row + self.col).reshape(-1, self.row.shape[-1])  # (rows * cols, d)
        x = self.proj(patches) + pos
        return torch.cat([self.cls.expand(B, -1, -1), x], dim=1)
