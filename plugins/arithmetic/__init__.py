"""Arithmetic: answer "123+456=" with "579", one character at a time.

Problems are generated: addition, subtraction and multiplication of non-negative integers with a
configurable number of digits; answers may be written reversed (least significant digit first),
which makes carrying learnable left to right. A problem's split is fixed by a hash of its text,
so no held-out problem is ever trained on; "test_long" (4-5 digits) and "test_xlong" (6-10) have
operands longer than any in training and measure length generalisation.

Positions (``data.position_ids``): ``sequence`` numbers tokens 0, 1, 2, ... as any task does;
``abacus`` numbers every digit by its significance within its number (McLeish et al. 2024,
"Transformers Can Do Arithmetic with the Right Embeddings"), in three regions: the first
operand's digits, the second's, and the tokens that predict the answer's digits. Digits to be
added then sit a fixed distance apart in position, however long the operands. In training the
significances 1, 2, 3, ... are numbered by a sorted random choice of numbers up to
``data.position_spread`` instead of 1, 2, 3 (randomised positions, Ruoss et al. 2023), so that
the distances between the digits of longer operands are trained too; evaluation numbers them 1, 2, 3.

Carries (``data.carries``, the default): each answer digit is followed by the carry or borrow it
passes on, "c" or "n", so that every answer token depends only on the digits of its own
significance; that is what makes the answers right on operands longer than training's.
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
def make_tokenizer(carries: bool = False) -> suite.CharTokenizer:
    """Digits and + - * =; with ``carries`` also "c" (a carry or borrow) and "n" (none)."""
    return suite.CharTokenizer(alphabet="0123456789+-*=" + "cn" * carries)


def writes_carries(tokenizer) -> bool:
    """Whether answers carry "c"/"n": the tokenizer says, so that a run saved before
    ``data.carries`` existed (its default now true) keeps its plain answers."""
    return "c" in tokenizer.alphabet


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


DECODE_ROOM = 32  # answer positions numbered beyond the longest answer in a batch (free decoding)
ABACUS_REGION = 64  # the fewest position numbers per region


def abacus_ids(problem: str, scale: list[int], region: int, sign_first: bool = False, carries: bool = False) -> list[int]:
    """Position numbers of "A op B=" and of the answer tokens to come. ``scale[s - 1]`` numbers
    significance s (1 = units): a digit of the first operand carries it, of the second region plus
    it, the token that predicts the answer's digit s ("=" for the units, then each answer token)
    2 * region plus it; the operator 0. One number per ``scale`` entry after the operands; with
    ``carries`` two: the token that predicts digit s and digit s itself, which predicts its carry."""
    a, op, b = PROBLEM.match(problem).group(1, 2, 3)
    answer = [n for n in scale for _ in range(1 + carries)]
    return ([scale[len(a) - 1 - i] for i in range(len(a))] + [0]
            + [region + scale[len(b) - 1 - i] for i in range(len(b))] + [2 * region + n for n in ([0] * sign_first + answer)])


def with_carries(problem: str, answer: str) -> str:
    """The digits of ``answer`` least significant first, each followed by the carry (addition) or
    borrow (subtraction, the smaller operand from the larger) it passes on, "c" or "n", up to the
    longer operand's length, zeros included; a last carry is the digit "1". A scratchpad that makes
    every answer token depend only on the operands' digits of its own significance."""
    a, op, b = PROBLEM.match(problem).group(1, 2, 3)
    if op not in "+-":
        raise suite.SuiteError(f"carries are written for + and - only, not for {op} (data.carries false)")
    x, y = (a, b) if op == "+" or int(a) >= int(b) else (b, a)
    n, carry, out = max(len(a), len(b)), 0, []
    for s in range(n):
        dx, dy = (int(v[-1 - s]) if s < len(v) else 0 for v in (x, y))
        total = dx + dy + carry if op == "+" else dx - dy - carry
        carry = int(total >= 10 or total < 0)
        out.append(f"{total % 10}{'cn'[1 - carry]}")
    return "".join(out) + "1" * carry


def answer_text(answer: str, reverse: bool, sign_first: bool, problem: str | None = None) -> str:
    """The answer as the model writes it: digits reversed or not, and with ``sign_first`` a sign
    ("+" or "-") before the digits, so that a difference's sign is decided before its digits.
    ``problem`` given: its digits and carries (``with_carries``) replace the digits."""
    digits = answer.lstrip("-")
    digits = with_carries(problem, answer) if problem else digits[::-1] if reverse else digits
    if sign_first:
        return ("-" if answer.startswith("-") else "+") + digits
    return digits + "-" * answer.startswith("-") if reverse else answer


def read_answer(text: str, reverse: bool, sign_first: bool, carries: bool = False) -> str:
    """The inverse of ``answer_text``."""
    if carries:
        text = read_answer(text.replace("c", "").replace("n", ""), reverse, sign_first)
        sign = "-" * text.startswith("-")
        return sign + (text.lstrip("-").lstrip("0") or "0")
    if sign_first:
        sign, digits = text[:1], text[1:]
        return ("-" if sign == "-" else "") + (digits[::-1] if reverse else digits)
    return text[::-1] if reverse else text


def encode(tokenizer, problem: str, answer: str, reverse: bool, scale: list[int] | None = None,
           region: int = ABACUS_REGION, sign_first: bool = False, carries: bool = False) -> tuple:
    """(prompt ids, answer ids + EOS), and with abacus positions (``scale`` given) the position
    numbers of the prompt and the answer as a third element."""
    written = answer_text(answer, reverse, sign_first, problem if carries else None)
    out = tokenizer.encode(problem), tokenizer.encode(written) + [tokenizer.EOS]
    return out if scale is None else (*out, abacus_ids(problem, scale, region, sign_first, carries))


def digit_ranges(d: dict) -> dict[str, tuple[int, int]]:
    """Operand lengths of every split: training's, test_long, test_xlong and test_d<N>."""
    out = {"train": (int(d["min_digits"]), int(d["max_digits"])), "test_long": tuple(int(n) for n in d["long_digits"])}
    if d.get("xlong_digits"):
        out["test_xlong"] = tuple(int(n) for n in d["xlong_digits"])
    out.update({f"test_d{n}": (int(n), int(n)) for n in d.get("test_lengths") or ()})
    return out


def position_settings(d: dict) -> tuple[bool, int, int]:
    """(abacus?, the spread of training's random numbering, numbers per region) from the data
    settings; runs made before positions were a setting number tokens in sequence."""
    kind = d.get("position_ids", "sequence")
    if kind not in ("sequence", "abacus"):
        raise suite.SuiteError(f"data.position_ids must be sequence or abacus, not {kind!r}")
    spread = int(d.get("position_spread", 0))
    longest = max(n for r in digit_ranges(d).values() for n in r)
    return kind == "abacus", spread, max(ABACUS_REGION, spread + 1, 2 * longest + 4 + DECODE_ROOM)


def scale_of(significances: int, spread: int, rng: random.Random | None = None) -> list[int]:
    """Numbers for significances 1..n: 1..n, or with ``rng`` a sorted random choice from 1..spread."""
    if rng is None or spread <= significances:
        return list(range(1, significances + 1))
    return sorted(rng.sample(range(1, spread + 1), significances))


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
    xlong_digits: list[int] = dataclasses.field(default_factory=lambda: [6, 10])
    """operand lengths of the test_xlong split"""
    test_lengths: list[int] = dataclasses.field(default_factory=list)
    """more splits, test_d<N>: operands of exactly N digits each"""
    position_ids: str = "abacus"
    """abacus: digits numbered by significance (docs/positions.md) | sequence: tokens 0, 1, 2, ..."""
    position_spread: int = 32
    """abacus: training numbers significances by a sorted random choice from 1..this"""
    reverse: bool = True
    """write answers least significant digit first"""
    sign_first: bool = False
    """write every answer's sign ("+" or "-") before its digits (docs/positions.md: not the default)"""
    carries: bool = True
    """write each answer digit's carry or borrow after it, "c" or "n" (a scratchpad; + and - only, reversed answers)"""
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
        return make_tokenizer(cfg["data"].get("carries", False))

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.EmbeddingAdapter(tokenizer.vocab_size, d_model)

    def build_head(self, tokenizer, d_model, cfg):
        return suite.TokenHead(d_model, tokenizer.vocab_size)

    def build_data(self, tokenizer, cfg):
        d, seed = cfg["data"], int(cfg["seed"])
        bad = set(d["ops"]) - set(OPS)
        if bad or not d["ops"]:
            raise suite.SuiteError(f"data.ops must be made of + - *, not {d['ops']!r}")
        if writes_carries(tokenizer) and ("*" in d["ops"] or not d["reverse"]):
            raise suite.SuiteError("data.carries (on by default) needs data.reverse true and data.ops of + and - only; "
                                   "pass --data.carries false")
        ranges = digit_ranges(d)
        abacus, _, region = position_settings(d)
        need = 3 * region
        if abacus and cfg["backbone"].get("positions") == "learned" and cfg["backbone"]["max_len"] < need:
            raise suite.SuiteError(f"data.position_ids abacus with learned positions needs backbone.max_len >= {need} "
                                   f"for these operand lengths, not {cfg['backbone']['max_len']}")
        splits = {
            "train": TrainStream(tokenizer, d, seed),
            "val": FixedSet(tokenizer, d, "val", d["val_size"], 1, d["ops"], ranges["train"]),
            "test": FixedSet(tokenizer, d, "test", d["test_size"], 2, d["ops"], ranges["train"]),
            "test_add3": FixedSet(tokenizer, d, "test", d["test_size"], 3, "+", (3, 3)),
        }
        # Longer operands than training ever saw: all of them are held out by construction.
        for seed_, name in enumerate((n for n in ranges if n != "train"), start=4):
            splits[name] = FixedSet(tokenizer, d, None, d["test_size"], seed_, d["ops"], ranges[name])
        return splits

    def collate(self, samples):
        return collate(samples)

    def predict(self, model, text, options):
        m = PROBLEM.match(text)
        if not m:
            raise suite.SuiteError(f"{text!r} is not a problem of the form A+B, A-B or A*B with non-negative integers")
        problem = f"{m[1]}{m[2]}{m[3]}="
        d = model.cfg["data"]
        abacus, _, region = position_settings(d)
        carries = writes_carries(model.tokenizer)
        max_new = int(options.get("max_tokens", (len(m[1]) + len(m[3]) + 2) * (1 + carries)))
        if abacus and max_new // (1 + carries) + 2 >= region:
            raise suite.SuiteError(f"this run numbers up to {region - 3} answer digits by significance; {problem} may need {max_new}")
        sign_first = d.get("sign_first", False)
        batch = collate([encode(model.tokenizer, problem, "", d["reverse"], scale_of(max_new + 2, 0) if abacus else None, region,
                                sign_first, carries)], room=max_new)
        P = int(batch["prefix_len"][0])
        out = suite.greedy_decode(model, batch["inputs"][:, :P], batch["padding"][:, :P], max_new, model.tokenizer.EOS,
                                  batch.get("positions"))
        answer = model.tokenizer.decode(out[0].tolist()[: (out[0] == model.tokenizer.EOS).int().argmax() or None])
        return read_answer(answer, d["reverse"], sign_first, carries)


@suite.hookimpl
def suite_register_tasks(register):
    register(ArithmeticTask())
