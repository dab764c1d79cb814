"""Freeze modes: which backbone parameters train after ``--init-from``.

none      everything trains
backbone  the whole backbone is frozen; adapter and head train
fpt       attention and MLP weights are frozen (an encoder-decoder's cross-attention too); layer
          norms and positions train, as in the Frozen Pretrained Transformer (Lu et al. 2021)
"""
from __future__ import annotations

from torch import nn

from .errors import SuiteError

FREEZE_MODES = ("none", "backbone", "fpt")


def check_freeze_mode(mode: str) -> str:
    if mode not in FREEZE_MODES:
        raise SuiteError(f"--freeze must be one of {', '.join(FREEZE_MODES)}, not {mode!r}")
    return mode


def freeze_backbone(backbone: nn.Module, mode: str) -> int:
    """Set ``requires_grad`` of the backbone's parameters for ``mode``; returns how many of its
    tensors stay trainable."""
    check_freeze_mode(mode)
    trainable = 0
    for name, p in backbone.named_parameters():
        train = mode == "none" or (mode == "fpt" and not any(part in f".{name}" for part in (".attn.", ".cross.", ".mlp.")))
        p.requires_grad_(train)
        trainable += train
    return trainable
