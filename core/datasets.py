"""Labelled data sets, for plugins: class folders on disk, and stratified train / val / test splits."""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import SuiteError

SPLIT_FOLDERS = ("train", "val", "test")


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
