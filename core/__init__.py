"""suite: one Transformer backbone shared by task plugins for many domains.

This module is the public API for plugins (DESIGN.md invariant 2): hook markers, the task and
weight-source types, tokenizer/adapter/head building blocks and the shared objectives.
"""
from .adapters import EmbeddingAdapter, PatchAdapter
from .backbone import Backbone, BackboneConfig, attention_mask
from .cache import cache_dir, file_lock
from .streams import Shuffled, Stream
from .datasets import class_folders, stratified_split
from .errors import SuiteError
from .heads import ClassifierHead, TokenHead, pool
from .hookspecs import hookimpl
from .registry import get_registry
from .runs import load_run
from .task import Pretrained, Task, WeightSource
from .tokenizer import CharTokenizer, Tokenizer
from suite.tasks import IGNORE, Classification, Generation, Objective, greedy_decode, top_classes
from suite.tasks import Choice, mask_options
from suite.tasks import LanguageModel, sample

__all__ = [
    "hookimpl", "Task", "WeightSource", "Pretrained", "SuiteError",
    "Tokenizer", "CharTokenizer", "EmbeddingAdapter", "PatchAdapter", "ClassifierHead", "TokenHead", "pool",
    "Backbone", "BackboneConfig", "attention_mask",
    "Objective", "Classification", "top_classes", "Generation", "greedy_decode", "IGNORE",
    "Choice", "mask_options",
    "load_run", "get_registry", "class_folders", "stratified_split",
    "LanguageModel", "sample",
    "Stream", "Shuffled", "cache_dir", "file_lock",
]
