"""The text tasks' settings: the data: section of text and text-classify, and text-classify's model:."""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Union

import suite


@dataclasses.dataclass
class TextData(suite.DataSettings):
    """data: the text, how it is cut and split"""

    corpus: Union[list[str], str] = dataclasses.field(default_factory=lambda: ["pydoc_topics", "stdlib_docstrings"])
    """built-in text, both offline (2.2 MB): pydoc_topics, stdlib_docstrings"""
    files: Union[list[str], str] = dataclasses.field(default_factory=list)
    """your own .txt / .jsonl / .csv globs instead of the built-in text"""
    text_column: str = "text"
    """the text field of .jsonl / .csv records (and the text column of a text-classify hf: data set)"""
    label_column: str = "label"
    """the label field of .jsonl / .csv records, or column of an hf: data set (text-classify)"""
    tokenizer: Literal["auto", "bytes", "source"] = "auto"
    """auto: the source's vocabulary with --init-from hf:PATH / minilm, else bytes | bytes | source"""
    holdout_percent: int = 10
    """pieces held out (by hash of the text), half val, half test"""
    batch_size: int = 32
    """training samples per optimiser step (per device)"""
    eval_batch_size: int = 64
    """samples per batch in validation and test"""


@dataclasses.dataclass
class TextLMData(TextData):
    """data: the text, how it is cut into pieces, split and windowed"""

    block_size: int = 128
    """tokens of context per training window"""
    chunk_chars: int = 2000
    """documents are cut at paragraphs into pieces of about this size before the split"""
    max_eval_windows: int = 400
    """cap on validation / test windows"""


@dataclasses.dataclass
class TextClassifyData(TextData):
    """data: labelled texts (built in: which stdlib package a docstring comes from)"""

    corpus: Union[list[str], str] = dataclasses.field(default_factory=list)
    """(unused: the built-in labelled set is the stdlib docstrings)"""
    dataset: Optional[str] = None
    """hf:NAME_OR_PATH: a Hugging Face data set (null: data.files, else the built-in set)"""
    split: Optional[str] = None
    """hf: only: the one split to use, split by hash (null: the data set's train/validation/test)"""
    max_tokens: int = 128
    """texts are cut to this many tokens (with the start and end tokens)"""
    holdout_percent: int = 20
    """records held out (by hash of the text), half val, half test"""


@dataclasses.dataclass
class TextClassifyModel(suite.ClassifierSettings):
    """model: the classifier head"""

    pooling: Literal["mean", "cls", "last"] = "mean"
    """mean of the token states, the first token's (cls) or the last one's"""
