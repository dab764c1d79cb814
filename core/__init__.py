"""suite: one Transformer backbone shared by task plugins for many domains.

This module is the public API for plugins (DESIGN.md invariant 2): hook markers, the task and
weight-source types, tokenizer/adapter/head building blocks, data helpers, the shared objectives
and their batch layouts. docs/plugins.md documents all of it. It only grows: a name exported here
keeps working, and one that is replaced is deprecated with a warning naming its replacement.
``suite.testing`` (imported on its own) is what a plugin's tests need.
"""
from .adapters import EmbeddingAdapter, PatchAdapter
from .backbone import Backbone, BackboneConfig, attention_mask
from .cache import cache_dir, file_lock
from .streams import Limited, Shuffled, Stream
from .datasets import PatchSet, class_folders, complete_splits, hash_bucket, hash_split, stratified_split
from .errors import SuiteError
from .freeze import FREEZE_MODES, freeze_backbone
from .heads import ClassifierHead, TokenHead, pool
from .hookspecs import hookimpl
from .registry import get_registry
from .runs import load_run
from .settings import ClassifierSettings, DataSettings
from .task import ClassificationTask, Pretrained, Task, WeightSource
from .tokenizer import CharTokenizer, Tokenizer
from suite.tasks import IGNORE, Classification, Generation, Objective, greedy_decode, top_classes
from suite.tasks import Choice, mask_options
from suite.tasks import LanguageModel, sample
from suite.tasks import Batch, ChoiceBatch, ClassificationBatch, GenerationBatch, LanguageModelBatch

__all__ = [
    "hookimpl", "Task", "WeightSource", "Pretrained", "SuiteError",
    "Tokenizer", "CharTokenizer", "EmbeddingAdapter", "PatchAdapter", "ClassifierHead", "TokenHead", "pool",
    "Backbone", "BackboneConfig", "attention_mask",
    "Objective", "Classification", "top_classes", "Generation", "greedy_decode", "IGNORE",
    "Choice", "mask_options",
    "load_run", "get_registry", "class_folders", "stratified_split",
    "LanguageModel", "sample",
    "Stream", "Shuffled", "Limited", "cache_dir", "file_lock",
    # added with the plugin authors' kit (docs/plugins.md)
    "ClassificationTask", "hash_split", "hash_bucket", "complete_splits", "PatchSet", "FREEZE_MODES", "freeze_backbone",
    "Batch", "ClassificationBatch", "GenerationBatch", "LanguageModelBatch", "ChoiceBatch",
    # added with typed settings (Task.settings, docs/settings.md)
    "DataSettings", "ClassifierSettings",
]
