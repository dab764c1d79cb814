"""Batch layouts: what a task's ``collate`` returns and each objective reads, as TypedDicts.

A batch is a plain ``dict[str, torch.Tensor]``; these types document (and ``suite.testing``
checks) which keys each objective needs. ``B`` is the batch size, ``T`` the sequence length.
(No ``from __future__ import annotations`` here: TypedDict needs real annotations to tell
required keys from optional ones.)
"""
import torch
from typing_extensions import NotRequired, TypedDict


class Batch(TypedDict):
    """What every batch holds: the layout a task's ``collate`` returns and the model reads.

    Each objective names its own layout (``Objective.batch``), a TypedDict that adds its targets."""

    inputs: torch.Tensor  # (B, T) long token ids, or (B, N, patch_dim) float patch vectors
    padding: NotRequired[torch.Tensor]  # (B, T) bool, True at padding (masked in attention and pooling)
    prefix_len: NotRequired[torch.Tensor]  # (B,) long: tokens seen bidirectionally under the prefix mask
    positions: NotRequired[torch.Tensor]  # (B, >= T) long: the task's own position numbers (digit significance, board square)


class ClassificationBatch(TypedDict):
    inputs: torch.Tensor  # (B, T) long token ids, or (B, N, patch_dim) float patch vectors
    label: torch.Tensor  # (B,) long: the class index
    padding: NotRequired[torch.Tensor]  # (B, T) bool, True at padding


class GenerationBatch(TypedDict):
    inputs: torch.Tensor  # (B, T) long: prompt (left-padded to P), answer, EOS, right padding
    targets: torch.Tensor  # (B, T) long: the next token at each position, IGNORE where nothing is predicted
    prefix_len: torch.Tensor  # (B,) long: P for every row
    padding: torch.Tensor  # (B, T) bool, True at padding
    positions: NotRequired[torch.Tensor]  # (B, >= T) long: the task's own position numbers (digit significance, board square)


class LanguageModelBatch(TypedDict):
    inputs: torch.Tensor  # (B, T) long token ids
    targets: torch.Tensor  # (B, T) long: the next token at each position, IGNORE where nothing is predicted
    n_bytes: NotRequired[torch.Tensor]  # (B,) long: bytes of text the scored targets stand for (bits per byte)
    padding: NotRequired[torch.Tensor]  # (B, T) bool, True at padding


class ChoiceBatch(TypedDict):
    inputs: torch.Tensor  # the model's input: (B, T) long token ids or (B, N, patch_dim) patch vectors
    label: torch.Tensor  # (B,) long: the index of the right option
    legal: NotRequired[torch.Tensor]  # (B, n_options) bool: the allowed options; predictions never pick others
    correct: NotRequired[torch.Tensor]  # (B, n_options) bool: every right option; overrides label
    soft: NotRequired[torch.Tensor]  # (B, n_options) float, rows summing to 1: a target distribution the loss uses instead
    padding: NotRequired[torch.Tensor]  # (B, T) bool, True at padding


class Seq2SeqBatch(TypedDict):
    source: torch.Tensor  # the encoder's input: (B, S) long token ids (padded) or (B, N, patch_dim) float patch vectors
    inputs: torch.Tensor  # (B, T) long: the decoder's input, BOS then the target, right-padded
    targets: torch.Tensor  # (B, T) long: the target then EOS (the next token at each position), IGNORE at padding
    padding: NotRequired[torch.Tensor]  # (B, T) bool, True at the target's padding
    source_padding: NotRequired[torch.Tensor]  # (B, S) bool, True at the source's padding (as the encoder's output is long)
    source_positions: NotRequired[torch.Tensor]  # (B, S) long: the task's own position numbers of the source
    positions: NotRequired[torch.Tensor]  # (B, >= T) long: the task's own position numbers of the target
    references: NotRequired[list]  # per row, every acceptable output as text (default: the target decoded)
