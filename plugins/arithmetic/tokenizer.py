"""The arithmetic tokenizer: one token a character, digits and + - * =, and the carry marks."""
from __future__ import annotations

import suite


def make_tokenizer(carries: bool = False) -> suite.CharTokenizer:
    """Digits and + - * =; with ``carries`` also "c" (a carry or borrow) and "n" (none)."""
    return suite.CharTokenizer(alphabet="0123456789+-*=" + "cn" * carries)


def writes_carries(tokenizer) -> bool:
    """Whether answers carry "c"/"n": the tokenizer says, so that a run saved before
    ``data.carries`` existed (its default now true) keeps its plain answers."""
    return "c" in tokenizer.alphabet
