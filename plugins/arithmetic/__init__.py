"""Arithmetic: answer "123+456=" with "579", one character at a time.

Problems are generated: addition, subtraction and multiplication of non-negative integers with a
configurable number of digits; answers may be written reversed (least significant digit first),
which makes carrying learnable left to right. A problem's split is fixed by a hash of its text,
so no held-out problem is ever trained on; "test_long" (4-5 digits) and "test_xlong" (6-10) have
operands longer than any in training and measure length generalisation.

Reads top to bottom, a file an idea:

  tokenizer.py  one token a character: digits, + - * =, and the carry marks "c" / "n"
  problems.py   problems and answers as text: generated, split by hash, reversed, signed, with
                carries (``data.carries``, the default: every answer digit followed by its carry)
  positions.py  position numbers (``data.position_ids``): in sequence, or abacus (every digit by
                its significance, randomised in training)
  data.py       problems as token ids, the training stream, the fixed evaluation sets, the batches
  settings.py   the data: settings
  task.py       the task ``arithmetic`` (the adapter and head are suite's embedding and token head)

This file registers the task (the modules, which need torch, are imported when the hook or a name
asks for them).
"""
from __future__ import annotations

import suite
from suite.lazy import lazy_getattr

# Where each name this module had before it was split lives; imported on first use (PEP 562).
_EXPORTS = {
    **dict.fromkeys(["make_tokenizer", "writes_carries"], ".tokenizer"),
    **dict.fromkeys(["OPS", "PROBLEM", "split_of", "sample_problem", "with_carries", "answer_text", "read_answer",
                     "digit_ranges"], ".problems"),
    **dict.fromkeys(["DECODE_ROOM", "ABACUS_REGION", "abacus_ids", "position_settings", "scale_of"], ".positions"),
    **dict.fromkeys(["encode", "TrainStream", "FixedSet", "collate"], ".data"),
    **dict.fromkeys(["ArithmeticData"], ".settings"),
    **dict.fromkeys(["ArithmeticTask"], ".task"),
}


@suite.hookimpl
def suite_register_tasks(register):
    from .task import ArithmeticTask

    register(ArithmeticTask())


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())  # the names this module had, from the files that hold them
