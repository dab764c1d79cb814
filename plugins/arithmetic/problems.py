"""Problems and their answers as text: "123+456=" and "579", or how the model writes it.

A problem is generated (``sample_problem``), its split fixed by a hash of its text (``split_of``),
so no held-out problem is ever trained on; ``digit_ranges`` gives the operand lengths of every
split. Answers may be written reversed (least significant digit first), which makes carrying
learnable left to right, and with a sign first (``answer_text``, read back by ``read_answer``).

Carries (``data.carries``, the default): each answer digit is followed by the carry or borrow it
passes on, "c" or "n" (``with_carries``), so that every answer token depends only on the digits of
its own significance; that is what makes the answers right on operands longer than training's.
"""
from __future__ import annotations

import random
import re

import suite

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
PROBLEM = re.compile(r"^\s*(\d+)\s*([+\-*])\s*(\d+)\s*=?\s*$")


def split_of(problem: str, holdout_percent: int) -> str:
    """Fixed per problem text (suite.hash_split): half of the held-out share is val, half test."""
    return suite.hash_split(problem, holdout_percent / 2, holdout_percent / 2)


def sample_problem(rng: random.Random, ops: str, digits: tuple[int, int]) -> tuple[str, str]:
    """A random problem "A op B=" and its answer text. Digit counts are uniform, then the number."""
    op = rng.choice(ops)
    a, b = (rng.randrange(10 ** (n - 1) if n > 1 else 0, 10 ** n) for n in
            (rng.randint(*digits), rng.randint(*digits)))
    return f"{a}{op}{b}=", str(OPS[op](a, b))


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


def digit_ranges(d: dict) -> dict[str, tuple[int, int]]:
    """Operand lengths of every split: training's, test_long, test_xlong and test_d<N>."""
    out = {"train": (int(d["min_digits"]), int(d["max_digits"])), "test_long": tuple(int(n) for n in d["long_digits"])}
    if d.get("xlong_digits"):
        out["test_xlong"] = tuple(int(n) for n in d["xlong_digits"])
    out.update({f"test_d{n}": (int(n), int(n)) for n in d.get("test_lengths") or ()})
    return out
