"""Sequence generation from a prompt with a prefix-LM mask (arithmetic answers, short transductions).

Batches are ``GenerationBatch`` (batches.py): prompt, answer and EOS, prompts left-padded so
every answer starts at P = ``prefix_len``; the prompt is seen bidirectionally, the answer causally.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .batches import GenerationBatch
from .objective import Objective, metric_collection, mean_metric
from .seq2seq import IGNORE, generate, teacher_forced



@torch.no_grad()
def greedy_decode(model, prompt: torch.Tensor, padding: torch.Tensor, max_new: int, eos: int,
                  positions: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy continuation of left-padded prompts (B, P) -> new tokens (B, max_new), EOS-terminated.

    ``positions``: the task's own position numbers (B, >= P + max_new - 1) for the prompt and the
    tokens to come, when its batches carry them (``batch["positions"]``); the model reads the first T.

    Each step re-runs the whole (short) sequence: answers here are a handful of tokens, and one
    full pass keeps the prefix mask exact without a key-value cache.
    """
    B, P = prompt.shape
    if model.backbone.encoder_decoder:  # the prompt is the source; the decoder starts from its last token
        batch = {"source": prompt, "source_padding": padding}
        if positions is not None:
            batch["source_positions"], batch["positions"] = positions[:, :P], positions[:, P - 1:]
        return generate(model, batch, prompt[:, -1:], max_new, eos)
    seq, pad = prompt, padding
    prefix_len = torch.full((B,), P, device=prompt.device)
    done = torch.zeros(B, dtype=torch.bool, device=prompt.device)
    for _ in range(max_new):
        step = {"inputs": seq, "prefix_len": prefix_len, "padding": pad}
        if positions is not None:
            step["positions"] = positions
        logits = model(step)[:, -1]
        nxt = torch.where(done, torch.full_like(done, eos, dtype=torch.long), logits.argmax(-1))
        seq = torch.cat([seq, nxt[:, None]], 1)
        pad = torch.cat([pad, torch.zeros_like(done)[:, None]], 1)
        done |= nxt == eos
        if done.all():
            break
    out = seq[:, P:]
    if out.shape[1] < max_new:
        out = F.pad(out, (0, max_new - out.shape[1]), value=eos)
    return out


def as_seq2seq(batch: dict) -> dict:
    """A generation batch read by an encoder-decoder: the prompt is the source, and the decoder
    starts from the prompt's last token (its separator, "=") and writes the answer."""
    P = int(batch["prefix_len"].max())
    out = {"source": batch["inputs"][:, :P], "source_padding": batch["padding"][:, :P], "inputs": batch["inputs"][:, P - 1:],
           "targets": batch["targets"][:, P - 1:], "padding": batch["padding"][:, P - 1:]}
    if "positions" in batch:
        out["source_positions"], out["positions"] = batch["positions"][:, :P], batch["positions"][:, P - 1:]
    return out


def _until_eos(tokens: torch.Tensor, eos: int) -> torch.Tensor:
    """Zero out everything after the first EOS so two answers compare equal iff their text does."""
    is_eos = (tokens == eos).int()
    return tokens.masked_fill(is_eos.cumsum(1) - is_eos > 0, 0)


class Generation(Objective):
    """Cross-entropy on the answer tokens; exact match of greedy answers at evaluation."""

    primary = "exact_match"
    batch = GenerationBatch

    def make_metrics(self):
        return metric_collection({"exact_match": mean_metric(), "token_accuracy": mean_metric(), "loss": mean_metric()})

    def loss(self, model, batch):
        if model.backbone.encoder_decoder:
            batch = as_seq2seq(batch)
        logits = model(batch)
        return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE)

    def evaluate(self, model, batch, split):
        P = int(batch["prefix_len"].max())
        if model.backbone.encoder_decoder:
            return self.evaluate_seq2seq(model, as_seq2seq(batch), split)
        logits = model(batch)
        targets = batch["targets"]
        m = self.metrics(split, logits.device)
        teacher_forced(m, logits, targets)
        # Exact match: decode freely from the prompt and compare with the reference answer.
        answer = targets[:, P - 1:]  # the tokens after the prompt, EOS included
        eos = self.tokenizer.EOS
        want = _until_eos(answer.masked_fill(answer == IGNORE, eos), eos)
        got = _until_eos(greedy_decode(model, batch["inputs"][:, :P], batch["padding"][:, :P], want.shape[1], eos,
                                      batch.get("positions")), eos)
        m["exact_match"].update((got == want).all(1).float())

    def evaluate_seq2seq(self, model, batch, split):
        """The same metrics on an encoder-decoder preset (``as_seq2seq``), decoding greedily."""
        logits, targets = model(batch), batch["targets"]
        m = self.metrics(split, logits.device)
        scored = teacher_forced(m, logits, targets)
        eos = self.tokenizer.EOS
        want = _until_eos(targets.masked_fill(~scored, eos), eos)
        got = _until_eos(generate(model, batch, batch["inputs"][:, :1], want.shape[1], eos), eos)
        m["exact_match"].update((got == want).all(1).float())
