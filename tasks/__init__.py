"""Shared objectives that plugin tasks build on (import them from ``suite``)."""
from .choice import Choice, mask_options
from .classification import Classification, top_classes
from .generation import IGNORE, Generation, greedy_decode
from .language_model import LanguageModel, sample
from .objective import Objective

__all__ = ["Objective", "Classification", "top_classes", "Generation", "greedy_decode", "IGNORE", "Choice", "mask_options",
           "LanguageModel", "sample"]
