"""Position numbers of a problem's tokens (``data.position_ids``).

``sequence`` numbers tokens 0, 1, 2, ... as any task does; ``abacus`` numbers every digit by its
significance within its number (McLeish et al. 2024, "Transformers Can Do Arithmetic with the
Right Embeddings"), in three regions: the first operand's digits, the second's, and the tokens
that predict the answer's digits. Digits to be added then sit a fixed distance apart in position,
however long the operands. In training the significances 1, 2, 3, ... are numbered by a sorted
random choice of numbers up to ``data.position_spread`` instead of 1, 2, 3 (randomised positions,
Ruoss et al. 2023), so that the distances between the digits of longer operands are trained too;
evaluation numbers them 1, 2, 3.
"""
from __future__ import annotations

import random

import suite

from .problems import PROBLEM, digit_ranges

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
