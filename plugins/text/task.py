"""The text tasks: a causal language model (text) and a text classifier (text-classify)."""
from __future__ import annotations

import torch

import suite

from . import corpus
from .data import (ConsecutiveWindows, Labelled, RandomWindows, check_length, collate_labelled, label_names, labelled,
                   read_text, token_stream)
from .heads import LMHead, make_adapter
from .settings import TextClassifyData, TextClassifyModel, TextLMData
from .tokenizer import ByteTokenizer, byte_tokenizer, load_tokenizer, source_tokenizer


# -- predict options of the text task ------------------------------------------------------------
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


# -- the tasks --------------------------------------------------------------------------------------
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
    description = "label texts from .csv/.jsonl files or a Hugging Face data set; built in: which stdlib package a docstring is from"
    tokenizer_class = ByteTokenizer
    settings = {"data": TextClassifyData, "model": TextClassifyModel}

    def build_tokenizer(self, cfg):
        return byte_tokenizer(cfg, label_names(cfg))

    def tokenizer_from_source(self, pretrained, cfg):
        tok = source_tokenizer(pretrained, cfg)
        if tok is not None:
            tok.classes = label_names(cfg)
        return tok

    def build_data(self, tokenizer, cfg):
        d = cfg["data"]
        T = check_length(cfg, "max_tokens", 3)  # start token, at least one of the text, end token
        records, half = labelled(cfg), d["holdout_percent"] / 2
        lacking = {"val", "test"} - {r.split for r in records}  # held-out splits the data does not give: cut by hash
        parts = {"train": [], "val": [], "test": []}
        for r in records:
            split = r.split if r.split in ("val", "test") else None
            parts[split or suite.hash_split(r.text, half * ("val" in lacking), half * ("test" in lacking))].append(r)
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
