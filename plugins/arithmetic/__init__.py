"""Arithmetic: answer "123+456=" with "579", one character at a time.

Problems are generated: addition, subtraction and multiplication of non-negative integers with a
configurable number of digits; answers may be written reversed (least significant digit first),
which makes carrying learnable left to right. A problem's split is fixed by a hash of its text,
so no held-out problem is ever trained on; "test_long" has operands longer than any in training
and measures length generalisation.
"""
from __future__ import annotations

import dataclasses
import random
import re

import torch
from torch.utils.data import Dataset

import suite

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
PROBLEM = re.compile(r"^\s*(\d+)\s*([+\-*])\s*(\d+)\s*=?\s*$")


# -- tokenizer --------------------------------------------------------------------------------
def make_tokenizer() -> suite.CharTokenizer:
    return suite.CharTokenizer(alphabet="0123456789+-*=")


# -- data -------------------------------------------------------------------------------------
def split_of(problem: str, holdout_percent: int) -> str:
    """Fixed per problem text (suite.hash_split): half of the held-out share is val, half test."""
    return suite.hash_split(problem, holdout_percent / 2, holdout_percent / 2)


def sample_problem(rng: random.Random, ops: str, digits: tuple[int, int]) -> tuple[str, str]:
    """A random problem "A op B=" and its answer text. Digit counts are uniform, then the number."""
    op = rng.choice(ops)
    a, b = (rng.randrange(10 ** (n - 1) if n > 1 else 0, 10 ** n) for n in
            (rng.randint(*digits), rng.randint(*digits)))
    return f"{a}{op}{b}=", str(OPS[op](a, b))


def encode(tokenizer, problem: str, answer: str, reverse: bool) -> tuple[list[int], list[int]]:
    return tokenizer.encode(problem), tokenizer.encode(answer[::-1] if reverse else answer) + [tokenizer.EOS]


class TrainStream(suite.Stream):
    """Training problems, ``epoch_size`` to an epoch, skipping every held-out one."""

    def __init__(self, tokenizer, data: dict, seed: int):
        super().__init__(seed)
        self.tokenizer, self.data = tokenizer, data

    def size(self):
        return int(self.data.get("epoch_size", 1_000_000))

    def samples(self, indices, generator):
        rng, d, out = random.Random(generator.initial_seed()), self.data, []
        while len(out) < len(indices):
            problem, answer = sample_problem(rng, d["ops"], (d["min_digits"], d["max_digits"]))
            if split_of(problem, d["holdout_percent"]) == "train":
                out.append(encode(self.tokenizer, problem, answer, d["reverse"]))
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
        self.items = [encode(tokenizer, p, a, data["reverse"]) for p, a in seen.items()]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(samples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Left-pad prompts so every answer starts at the same position P; right-pad answers."""
    PAD, IGNORE = suite.CharTokenizer.PAD, suite.IGNORE
    P = max(len(p) for p, _ in samples)
    A = max(len(a) for _, a in samples)
    inputs = torch.tensor([[PAD] * (P - len(p)) + p + a + [PAD] * (A - len(a)) for p, a in samples])
    # Position t predicts token t + 1: the answer and its EOS are predicted from P - 1 on.
    targets = torch.tensor([[IGNORE] * (P - 1) + a + [IGNORE] * (A - len(a) + 1) for _, a in samples])
    return {"inputs": inputs, "targets": targets, "padding": inputs == PAD,
            "prefix_len": torch.full((len(samples),), P, dtype=torch.long)}


# -- settings -----------------------------------------------------------------------------------
@dataclasses.dataclass
class ArithmeticData(suite.DataSettings):
    """data: generated problems; a problem's split is fixed by a hash of its text"""

    ops: str = "+-"
    """the operations, any of + - *"""
    min_digits: int = 1
    """shortest operand in training, val and test"""
    max_digits: int = 3
    """longest operand in training, val and test"""
    long_digits: list[int] = dataclasses.field(default_factory=lambda: [4, 5])
    """operand lengths of the test_long split (length generalisation)"""
    reverse: bool = True
    """write answers least significant digit first"""
    holdout_percent: int = 10
    """problems held out of training (by hash of the text), half val, half test"""
    epoch_size: int = 1000000
    """training problems per epoch (they are generated: an epoch is a count)"""
    val_size: int = 1000
    """validation problems"""
    test_size: int = 2000
    """problems in each test split"""
    batch_size: int = 128
    """training samples per optimiser step (per device)"""


# -- the task ---------------------------------------------------------------------------------
class ArithmeticTask(suite.Task):
    name = "arithmetic"
    domain = "maths"
    description = "integer +, -, * answered digit by digit; held-out and longer-operand test splits"
    objective = suite.Generation
    mask = "prefix"
    tokenizer_class = suite.CharTokenizer
    settings = {"data": ArithmeticData}

    def build_tokenizer(self, cfg):
        return make_tokenizer()

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.EmbeddingAdapter(tokenizer.vocab_size, d_model)

    def build_head(self, tokenizer, d_model, cfg):
        return suite.TokenHead(d_model, tokenizer.vocab_size)

    def build_data(self, tokenizer, cfg):
        d, seed = cfg["data"], int(cfg["seed"])
        bad = set(d["ops"]) - set(OPS)
        if bad or not d["ops"]:
            raise suite.SuiteError(f"data.ops must be made of + - *, not {d['ops']!r}")
        digits = (int(d["min_digits"]), int(d["max_digits"]))
        long = tuple(int(n) for n in d["long_digits"])
        return {
            "train": TrainStream(tokenizer, d, seed),
            "val": FixedSet(tokenizer, d, "val", d["val_size"], 1, d["ops"], digits),
            "test": FixedSet(tokenizer, d, "test", d["test_size"], 2, d["ops"], digits),
            "test_add3": FixedSet(tokenizer, d, "test", d["test_size"], 3, "+", (3, 3)),
            # Longer operands than training ever saw: all of them are held out by construction.
            "test_long": FixedSet(tokenizer, d, None, d["test_size"], 4, d["ops"], long),
        }

    def collate(self, samples):
        return collate(samples)

    def predict(self, model, text, options):
        m = PROBLEM.match(text)
        if not m:
            raise suite.SuiteError(f"{text!r} is not a problem of the form A+B, A-B or A*B with non-negative integers")
        problem = f"{m[1]}{m[2]}{m[3]}="
        reverse = model.cfg["data"]["reverse"]
        batch = collate([encode(model.tokenizer, problem, "", reverse)])
        max_new = int(options.get("max_tokens", len(m[1]) + len(m[3]) + 2))
        P = int(batch["prefix_len"][0])
        out = suite.greedy_decode(model, batch["inputs"][:, :P], batch["padding"][:, :P], max_new, model.tokenizer.EOS)
        answer = model.tokenizer.decode(out[0].tolist()[: (out[0] == model.tokenizer.EOS).int().argmax() or None])
        return answer[::-1] if reverse else answer


@suite.hookimpl
def suite_register_tasks(register):
    register(ArithmeticTask())
