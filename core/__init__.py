"""suite: one Transformer backbone shared by task plugins for many domains.

This module is the public API for plugins (DESIGN.md invariant 2): hook markers, the task and
weight-source types, tokenizer/adapter/head building blocks, data helpers, the shared objectives
and their batch layouts. docs/plugins.md documents all of it. It only grows: a name exported here
keeps working, and one that is replaced is deprecated with a warning naming its replacement.
``suite.testing`` (imported on its own) is what a plugin's tests need.
"""
from .lazy import lazy_getattr

# Where each name lives. They are imported on first use (PEP 562), so that `import suite` and the
# commands that must answer before torch loads (`suite uci`'s handshake, suite/launch.py) stay light.
_EXPORTS = {
    **dict.fromkeys(["EmbeddingAdapter", "PatchAdapter"], ".adapters"),
    **dict.fromkeys(["Backbone", "BackboneConfig", "attention_mask"], ".backbone"),
    **dict.fromkeys(["cache_dir", "file_lock"], ".cache"),
    **dict.fromkeys(["Limited", "Shuffled", "Stream"], ".streams"),
    **dict.fromkeys(["PatchSet", "class_folders", "complete_splits", "hash_bucket", "hash_split", "stratified_split"], ".datasets"),
    **dict.fromkeys(["SuiteError"], ".errors"),
    **dict.fromkeys(["FREEZE_MODES", "freeze_backbone"], ".freeze"),
    **dict.fromkeys(["ClassifierHead", "TokenHead", "pool"], ".heads"),
    **dict.fromkeys(["hookimpl"], ".hookspecs"),
    **dict.fromkeys(["get_registry"], ".registry"),
    **dict.fromkeys(["load_run"], ".runs"),
    **dict.fromkeys(["ClassifierSettings", "DataSettings"], ".settings"),
    **dict.fromkeys(["ClassificationTask", "Pretrained", "Seq2SeqTask", "Task", "WeightSource"], ".task"),
    **dict.fromkeys(["CharTokenizer", "Tokenizer"], ".tokenizer"),
    **dict.fromkeys(["IGNORE", "Classification", "Generation", "Objective", "greedy_decode", "top_classes", "Choice", "mask_options", "LanguageModel", "sample", "Batch", "ChoiceBatch", "ClassificationBatch", "GenerationBatch", "LanguageModelBatch",
                     "Seq2Seq", "Seq2SeqBatch", "Seq2SeqAdapter", "Seq2SeqSettings", "OutputHead", "generate"], "suite.tasks"),
}

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
    # Hugging Face data sets for classification tasks (--data.dataset hf:NAME_OR_PATH)
    "hf_datasets",
    # sequence to sequence on encoder-decoder presets (tasks/seq2seq.py)
    "Seq2SeqTask", "Seq2Seq", "Seq2SeqBatch", "Seq2SeqAdapter", "Seq2SeqSettings", "OutputHead", "generate",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())  # submodules too, e.g. suite.runs, as before


def __dir__():
    return sorted({*globals(), *__all__})
