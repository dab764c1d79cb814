"""The text tasks' data: a stream of token ids cut into windows (text), labelled texts (text-classify).

The text itself, built in or the user's files, is read by corpus.py; this file turns it into the
splits the tasks return from ``build_data``.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

import suite

from . import corpus


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


def hf_labelled(d: dict) -> tuple[list[str], list[corpus.Record]]:
    """A Hugging Face data set (data.dataset hf:NAME_OR_PATH): its classes, and its labelled texts,
    each with its split where the data set has them."""
    if d.get("files"):
        raise suite.SuiteError("text-classify: give data.files or data.dataset, not both")
    data = suite.hf_datasets.load_labelled(d["dataset"], d["split"], d["text_column"], d["label_column"])
    return data.classes, [corpus.Record(text, data.classes[y], f"{d['dataset']} {split}", "" if split == "all" else split)
                          for split, (texts, labels) in data.parts.items() for text, y in zip(texts, labels.tolist())]


_labelled_cache: dict[str, tuple] = {}


def labelled_set(cfg: dict) -> tuple[list[str], list[corpus.Record]]:
    """(class names, labelled records) of the configured data, read once per process."""
    d = cfg["data"]
    key = repr((d.get("files"), d.get("text_column"), d.get("label_column"), d.get("dataset"), d.get("split")))
    if key not in _labelled_cache:
        _labelled_cache.clear()
        if d.get("dataset"):
            _labelled_cache[key] = hf_labelled(d)
        else:
            records = read_text(cfg, labels=True)
            _labelled_cache[key] = class_names(records), records
    return _labelled_cache[key]


def labelled(cfg: dict) -> list[corpus.Record]:
    return labelled_set(cfg)[1]


def label_names(cfg: dict) -> list[str]:
    return labelled_set(cfg)[0]


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
