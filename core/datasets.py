"""Data set helpers for plugins: splits fixed by a hash, class folders on disk, stratified
train / val / test splits, and labelled splits encoded once.

Each function here serves two or more plugins; a plugin author should find it here.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset

from .errors import SuiteError

SPLIT_FOLDERS = ("train", "val", "test")


def hash_bucket(key: str) -> float:
    """A number in [0, 100) fixed by the text of ``key`` (its CRC-32): the same key always lands
    in the same bucket, on every machine and in every run. Whole percents come from the CRC's
    last two decimal digits, hundredths from the two before them."""
    crc = zlib.crc32(key.encode("utf-8", "surrogateescape"))
    return crc % 100 + crc // 100 % 100 / 100


def hash_split(key: str, val_percent: float, test_percent: float) -> str:
    """"train", "val" or "test" for a sample (a problem, a document, a game) named by ``key``:
    fixed by a hash, so a held-out sample is never trained on, however the data is generated
    or ordered. ``val_percent`` and ``test_percent`` of all keys are held out."""
    bucket = hash_bucket(key)
    if bucket < val_percent:
        return "val"
    return "test" if bucket < val_percent + test_percent else "train"


def scan_class_folder(root: Path, suffixes: set[str], kind: str) -> dict[str, list[Path]]:
    """``ROOT/<class>/**/<file>`` -> {class: sorted files}, the classes being the subfolders that
    hold at least one file with one of ``suffixes``; ``kind`` ("image", "audio") names them in errors."""
    if not root.is_dir():
        raise SuiteError(f"{root}: {kind} folder not found (set --data.root to a folder of class subfolders)")
    out = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        if files:
            out[sub.name] = files
    if not out:
        raise SuiteError(f"{root}: no class subfolders with {kind} files ({', '.join(sorted(suffixes))})")
    return out


def class_folders(root, suffixes: set[str], kind: str) -> tuple[list[str], dict[str, dict[str, list[Path]]]]:
    """An ImageFolder-style data set -> (classes, {split: {class: files}}).

    ``ROOT/train/<class>/...`` and ``ROOT/test/<class>/...`` (and optionally ``ROOT/val/``) give
    those splits; otherwise ``ROOT/<class>/...`` is one pool, the split "all", for the caller to
    split. The classes are the training ones; a held-out class that training lacks is an error.
    """
    root = Path(root).expanduser()
    if not all((root / s).is_dir() for s in ("train", "test")):
        found = {"all": scan_class_folder(root, suffixes, kind)}
        return list(found["all"]), found
    found = {s: scan_class_folder(root / s, suffixes, kind) for s in SPLIT_FOLDERS if (root / s).is_dir()}
    classes = list(found["train"])
    for split, files in found.items():
        unknown = sorted(set(files) - set(classes))
        if unknown:
            raise SuiteError(f"{root / split}: classes {unknown} are not among the training classes {classes}")
    return classes, found


def stratified_split(labels: torch.Tensor, fractions: list[float], seed: int) -> list[torch.Tensor]:
    """Indices split into len(fractions) + 1 parts; each class is split in the same proportions.
    The last part gets what the fractions leave. Sorted indices, fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        start = 0
        for k, f in enumerate(fractions):
            n = int(round(f * len(idx)))
            parts[k].append(idx[start:start + n])
            start += n
        parts[-1].append(idx[start:])
    return [torch.cat(p).sort().values for p in parts]


def complete_splits(parts: dict[str, tuple[torch.Tensor, torch.Tensor]], val_fraction: float, test_fraction: float,
                    seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Labelled data as given -> {"train", "val", "test"}: (inputs, labels) each.

    ``{"all": ...}`` (one pool, e.g. from ``class_folders``) is split three ways, per class;
    ``{"train", "test"}`` gets its validation split cut from training (``val_fraction`` of it);
    ``{"train", "val", "test"}`` is returned as it is."""
    if "all" in parts:
        x, y = parts["all"]
        val, test, train = stratified_split(y, [val_fraction, test_fraction], seed)
        return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    if "val" in parts:
        return {s: parts[s] for s in SPLIT_FOLDERS}
    x, y = parts["train"]
    val, train = stratified_split(y, [val_fraction], seed)
    return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": parts["test"]}


class PatchSet(Dataset):
    """A labelled split encoded once (image patches, spectrogram patches, ...) and served as it is.

    ``encode`` maps a chunk of raw samples (N, ...) to model inputs (N, ...); it runs ``chunk``
    samples at a time. ``dtype`` stores the inputs smaller (``torch.float16`` halves the memory);
    items are ``{"inputs": float32 tensor, "label": long}``, the layout of ``ClassificationBatch``.
    """

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], raw: torch.Tensor, labels: torch.Tensor,
                 chunk: int = 2048, dtype: torch.dtype | None = None):
        self.inputs = torch.cat([encode(raw[i:i + chunk]).to(dtype) for i in range(0, max(len(raw), 1), chunk)])
        self.labels = labels.long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"inputs": self.inputs[i].float(), "label": self.labels[i]}
