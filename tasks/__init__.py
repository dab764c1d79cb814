"""Shared objectives that plugin tasks build on (import them from ``suite``), with the batch
layout each one reads."""
from .batches import Seq2SeqBatch
from .choice import Choice, ChoiceBatch, mask_options
from .classification import Classification, ClassificationBatch, top_classes
from .generation import IGNORE, Generation, GenerationBatch, greedy_decode
from .language_model import LanguageModel, LanguageModelBatch, sample
from .objective import Batch, Objective
from .seq2seq import OutputHead, Seq2Seq, Seq2SeqAdapter, Seq2SeqSettings, generate, score

__all__ = ["Objective", "Classification", "top_classes", "Generation", "greedy_decode", "IGNORE", "Choice", "mask_options",
           "LanguageModel", "sample",
           "Batch", "ClassificationBatch", "GenerationBatch", "LanguageModelBatch", "ChoiceBatch",
           "Seq2Seq", "Seq2SeqBatch", "Seq2SeqAdapter", "Seq2SeqSettings", "OutputHead", "generate", "score"]
