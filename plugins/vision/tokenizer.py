"""The vision tokenizer: images to normalised ViT-style patch vectors, and the normalisation statistics.

An image (C, H, W) is cut into non-overlapping ``patch_size`` squares, each flattened to a vector
of C * p * p pixels normalised with the training set's per-channel statistics (``channel_stats``).
"""
from __future__ import annotations

import dataclasses

import torch

import suite


@dataclasses.dataclass
class ImageTokenizer(suite.Tokenizer):
    """Images (B, C, H, W) -> normalised patch vectors (B, rows * cols, C * p * p).

    ``mean``/``std`` are per-channel statistics of the training images on the [0, 1] scale;
    ``classes`` are the label names, so a run directory can predict without its data.
    """

    channels: int
    height: int
    width: int
    patch_size: int
    mean: list[float]
    std: list[float]
    classes: list[str]

    def __post_init__(self):
        p = self.patch_size
        if p < 1 or self.height % p or self.width % p:
            raise suite.SuiteError(
                f"data.patch_size {p} must divide the image size {self.height}x{self.width}")

    @property
    def grid(self) -> tuple[int, int]:
        return self.height // self.patch_size, self.width // self.patch_size

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size ** 2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) in 0..255, or float in [0, 1] -> (B, N, patch_dim) float32."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        x = (x - mean) / std
        B, C, H, W = x.shape
        p = self.patch_size
        # (B, C, rows, p, cols, p) -> (B, rows, cols, C, p, p) -> (B, rows * cols, C * p * p)
        x = x.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, (H // p) * (W // p), C * p * p)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) on the [0, 1] scale, in chunks."""
    C = images.shape[1]
    total, sq, count = torch.zeros(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64), 0
    for i in range(0, len(images), 8192):
        x = images[i:i + 8192].double().div_(255).transpose(0, 1).reshape(C, -1)
        total += x.sum(1)
        sq += (x * x).sum(1)
        count += x.shape[1]
    mean = total / count
    std = (sq / count - mean ** 2).clamp_min(1e-12).sqrt().clamp_min(1e-3)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]
