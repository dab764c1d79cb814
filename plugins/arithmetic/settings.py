"""The arithmetic task's settings: the data: section."""
from __future__ import annotations

import dataclasses

import suite


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
