"""Shared objectives that plugin tasks build on (import them from ``suite``)."""
from .classification import Classification
from .generation import IGNORE, Generation, greedy_decode
from .objective import Objective

__all__ = ["Objective", "Classification", "Generation", "greedy_decode", "IGNORE"]
