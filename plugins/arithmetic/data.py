"""The arithmetic data: problems as token ids (``encode``), the training stream, the fixed
evaluation sets and the batches (``collate``)."""
from __future__ import annotations

import random

import torch
from torch.utils.data import Dataset

import suite

from .positions import ABACUS_REGION, DECODE_ROOM, abacus_ids, position_settings, scale_of
from .problems import answer_text, sample_problem, split_of
from .tokenizer import writes_carries


def encode(tokenizer, problem: str, answer: str, reverse: bool, scale: list[int] | None = None,
           region: int = ABACUS_REGION, sign_first: bool = False, carries: bool = False) -> tuple:
    """(prompt ids, answer ids + EOS), and with abacus positions (``scale`` given) the position
    numbers of the prompt and the answer as a third element."""
    written = answer_text(answer, reverse, sign_first, problem if carries else None)
    out = tokenizer.encode(problem), tokenizer.encode(written) + [tokenizer.EOS]
    return out if scale is None else (*out, abacus_ids(problem, scale, region, sign_first, carries))


class TrainStream(suite.Stream):
    """Training problems, ``epoch_size`` to an epoch, skipping every held-out one."""

    indexed = False  # a problem is drawn from the batch's generator, whatever its place

    def __init__(self, tokenizer, data: dict, seed: int):
        super().__init__(seed)
        self.tokenizer, self.data = tokenizer, data

    def size(self):
        return int(self.data.get("epoch_size", 1_000_000))

    def samples(self, indices, generator):
        rng, d, out = random.Random(generator.initial_seed()), self.data, []
        abacus, spread, region = position_settings(d)
        sign_first, carries = d.get("sign_first", False), writes_carries(self.tokenizer)
        while len(out) < len(indices):
            problem, answer = sample_problem(rng, d["ops"], (d["min_digits"], d["max_digits"]))
            if split_of(problem, d["holdout_percent"]) == "train":
                scale = scale_of(len(problem) + 1, spread, rng) if abacus else None
                out.append(encode(self.tokenizer, problem, answer, d["reverse"], scale, region, sign_first, carries))
        return out


class FixedSet(Dataset):
    """A fixed list of distinct problems from one split."""

    def __init__(self, tokenizer, data: dict, split: str | None, size: int, seed: int, ops: str, digits):
        rng, seen = random.Random(seed), {}
        for _ in range(200 * size):
            if len(seen) == size:
                break
            problem, answer = sample_problem(rng, ops, digits)
            if split is None or split_of(problem, data["holdout_percent"]) == split:
                seen[problem] = answer
        abacus, _, region = position_settings(data)  # evaluation: significances numbered 1, 2, 3, ...
        self.items = [encode(tokenizer, p, a, data["reverse"], scale_of(len(p) + 1 + DECODE_ROOM, 0) if abacus else None, region,
                             data.get("sign_first", False), writes_carries(tokenizer)) for p, a in seen.items()]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(samples: list[tuple], room: int = DECODE_ROOM) -> dict[str, torch.Tensor]:
    """Left-pad prompts so every answer starts at the same position P; right-pad answers.

    Samples with abacus position numbers (a third element) give ``positions`` as well, ``room``
    further than the batch's answers (a sample's last number repeated where it has none)."""
    PAD, IGNORE = suite.CharTokenizer.PAD, suite.IGNORE
    P = max(len(s[0]) for s in samples)
    A = max(len(s[1]) for s in samples)
    inputs = torch.tensor([[PAD] * (P - len(p)) + p + a + [PAD] * (A - len(a)) for p, a, *_ in samples])
    # Position t predicts token t + 1: the answer and its EOS are predicted from P - 1 on.
    targets = torch.tensor([[IGNORE] * (P - 1) + a + [IGNORE] * (A - len(a) + 1) for _, a, *_ in samples])
    batch = {"inputs": inputs, "targets": targets, "padding": inputs == PAD,
             "prefix_len": torch.full((len(samples),), P, dtype=torch.long)}
    if len(samples[0]) > 2:
        width = P + A + room
        batch["positions"] = torch.tensor([([0] * (P - len(p)) + ids + [ids[-1]] * width)[:width] for p, _, ids in samples])
    return batch
