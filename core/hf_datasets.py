"""Labelled Hugging Face data sets, ``--data.dataset hf:NAME_OR_PATH``, read for the classification
plugins (text-classify, vision, audio) through the ``datasets`` library (``pip install 'suite[datasets]'``).

NAME_OR_PATH is, checked in this order:
  a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``   ``load_from_disk``
  a local directory of data files (its split files as ``datasets`` names them:    ``load_dataset`` with the
  train*, validation*, test*, ...), or one data file or a glob of them             builder of the files
  (.parquet, .csv, .json, .jsonl, .arrow: one pool of rows)
  a Hub name, NAME or OWNER/NAME                                                    ``load_dataset``, online only
Nothing is downloaded but a Hub data set, and only online (not with ``HF_DATASETS_OFFLINE=1``).

Data files and Hub data sets go through the library's cache (Arrow files under ``HF_DATASETS_CACHE``,
memory-mapped, built once) unless they are large: files over ``STREAM_BYTES`` on disk, and a Hub data
set whose download size is over it or unknown, are streamed (read row by row, nothing cached).

Splits: the data set's own train, validation (or valid, val, dev) and test; with ``--data.split NAME``
only that split, as one pool. What a data set lacks the plugin derives, as for its folders: one pool is
split three ways, train + validation makes validation the test split, and validation is cut from train.
Labels: a ``ClassLabel`` column gives the classes in its order; other labels (strings, integers) are
the classes found in training, sorted. Rows without a label (None, or -1 of a ClassLabel) are skipped.
"""
from __future__ import annotations

import glob
import io
import json
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import SuiteError

INSTALL = "pip install 'suite[datasets]'"
STREAM_BYTES = 1 << 30  # data files or a Hub download larger than this (1 GiB) are streamed, not cached
SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val", "dev": "val", "test": "test"}
BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}


@dataclass
class Labelled:
    """A labelled data set read into memory: the class names, and per split (``"all"``, or ``"train"``
    and ``"test"`` with ``"val"`` where the data set has it) the inputs and the labels (N,), the
    layout ``suite.complete_splits`` takes. ``skipped`` counts unreadable rows."""

    classes: list[str]
    parts: dict[str, tuple[Any, torch.Tensor]]
    skipped: int = 0


def import_datasets():
    try:
        import datasets
    except ImportError:
        raise SuiteError(f"hf: data sets need the datasets library: {INSTALL}") from None
    if not sys.stderr.isatty():
        datasets.disable_progress_bars()  # "Generating train split" bars would fill a log
    return datasets


# -- opening: NAME_OR_PATH -> {split name: Dataset or IterableDataset} ------------------------------
def is_saved(path: Path) -> bool:
    """Whether ``path`` is a directory written by ``save_to_disk``."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def load_saved(datasets, path: Path) -> dict:
    """A ``save_to_disk`` directory -> {split: Dataset, or None for a split without rows, which the
    library saves but cannot open}; a lone Dataset is the split "train"."""
    if (path / "state.json").is_file():
        dirs = {"train": path}
    else:
        dirs = {s: path / s for s in json.loads((path / "dataset_dict.json").read_text())["splits"]}
    return {s: datasets.load_from_disk(str(d)) if json.loads((d / "state.json").read_text()).get("_data_files") else None
            for s, d in dirs.items()}


def builder_for_files(datasets, name: str, files: list[str]):
    suffixes = sorted({Path(f).suffix.lower() for f in files})
    if len(suffixes) != 1 or suffixes[0] not in BUILDERS:
        raise SuiteError(f"hf:{name}: not a data set: give files of one kind ({', '.join(BUILDERS)}), "
                         f"not {', '.join(suffixes) or 'no files'}")
    return datasets.load_dataset_builder(BUILDERS[suffixes[0]], data_files=files)


def cached_or_streamed(builder, local: bool) -> dict:
    """The builder's splits: through the cache, or streamed when the data is large (``STREAM_BYTES``).
    A split without rows is None (the library cannot open one from the cache)."""
    if local:
        size = sum(os.path.getsize(f) for files in (builder.config.data_files or {}).values() for f in files)
    else:
        size = builder.info.download_size or builder.info.dataset_size  # None: the Hub does not say
    if size is None or size > STREAM_BYTES:
        return dict(builder.as_streaming_dataset())
    builder.download_and_prepare()
    return {s: builder.as_dataset(split=s) if info.num_examples else None for s, info in builder.info.splits.items()}


@contextmanager
def hub_access(datasets):
    """Around reading a Hub name: yields why the Hub is not tried ("" when it is). Without a network
    (the Hub's host does not resolve) the library's offline mode is on for the read, so that a cached
    copy is read and anything else fails at once, not after half a minute of retries."""
    import huggingface_hub.constants as hub

    if datasets.config.HF_HUB_OFFLINE:
        yield "offline: HF_DATASETS_OFFLINE / HF_HUB_OFFLINE is set"
        return
    host = (datasets.config.HF_ENDPOINT.split("://", 1)[-1].split("/", 1)[0]).split(":")[0]
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        saved = hub.HF_HUB_OFFLINE
        datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True
        try:
            yield f"no network: {host} does not resolve"
        finally:
            datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = False, saved
        return
    yield ""


def open_dataset(name: str) -> tuple[dict, Path | None]:
    """NAME_OR_PATH -> ({split: data set} as the data set names its splits, the folder that relative
    file paths in its rows are read from)."""
    datasets = import_datasets()
    from datasets.exceptions import DatasetsError

    path = Path(name).expanduser()
    files = sorted(glob.glob(str(path), recursive=True)) if glob.has_magic(str(path)) else []
    try:
        if path.is_dir() and is_saved(path):
            return load_saved(datasets, path), path
        if path.is_dir():
            return cached_or_streamed(datasets.load_dataset_builder(str(path)), local=True), path
        if path.is_file() or files:
            files = files or [str(path)]
            return cached_or_streamed(builder_for_files(datasets, name, files), local=True), Path(files[0]).parent
        if name.startswith(("/", ".", "~")) or name.count("/") > 1 or glob.has_magic(name):
            raise SuiteError(f"hf:{name}: no such file, folder or glob (a Hub name is NAME or OWNER/NAME)")
        with hub_access(datasets) as why_not:
            try:
                return cached_or_streamed(datasets.load_dataset_builder(name), local=False), None
            except ConnectionError as e:
                raise SuiteError(f"hf:{name}: not a local data set, and the Hugging Face Hub cannot be reached"
                                 f"{f' ({why_not})' if why_not else ''}: {first_line(e)}") from None
    except (OSError, ValueError, KeyError, IndexError, DatasetsError) as e:
        raise SuiteError(f"hf:{name}: not a data set: {first_line(e)}") from None


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def choose_splits(found: dict, split: str | None, name: str) -> dict[str, tuple[str, Any]]:
    """{our split ("train", "val", "test", or "all"): (the data set's split name, its rows)}."""
    if split:
        if split not in found:
            raise SuiteError(f"hf:{name}: no split {split!r} (splits: {', '.join(found)})")
        return {"all": (split, found[split])}
    ours = {}
    for hf_name, ds in found.items():
        s = SPLIT_NAMES.get(hf_name.lower())
        if s and s not in ours:
            ours[s] = (hf_name, ds)
    if "train" not in ours:
        if len(found) != 1:
            raise SuiteError(f"hf:{name}: no train split among {', '.join(found)}; name the one to use with --data.split")
        return {"all": next(iter(found.items()))}
    return ours


# -- reading: rows -> inputs and labels -------------------------------------------------------------
def columns_of(ds) -> list[str]:
    if ds.column_names is not None:
        return list(ds.column_names)
    first = next(iter(ds), None)  # a streamed data set whose files do not say
    return list(first) if first else []


def prepare_columns(datasets, ds, where: str, column: str, label_column: str, kind: str):
    """The rows with only the two columns, image and audio cells as their bytes (read by the plugin,
    not decoded here), and the ClassLabel names or None."""
    columns = columns_of(ds)
    for col, setting in ((column, f"{kind}_column"), (label_column, "label_column")):
        if col not in columns:
            raise SuiteError(f"{where}: no column {col!r} (columns: {', '.join(columns)}); set --data.{setting}")
    features = ds.features or {}
    cell = features.get(column)
    if isinstance(cell, (datasets.Image, datasets.Audio)):
        ds = ds.cast_column(column, type(cell)(decode=False))
    label = features.get(label_column)
    if label is not None and not isinstance(label, (datasets.ClassLabel, datasets.Value)):
        raise SuiteError(f"{where}: column {label_column!r} holds {label}, not one class label a row")
    names = list(label.names) if isinstance(label, datasets.ClassLabel) else None
    return ds.select_columns(list(dict.fromkeys([column, label_column]))), names


def media(value, where: str, base: Path | None):
    """An image or audio cell -> what the plugin's file reader opens: a binary file object named
    ``where`` (the bytes stored in the data set) or a Path (relative ones under the data set's folder)."""
    if isinstance(value, dict) and value.get("bytes") is not None:
        f = io.BytesIO(value["bytes"])
        f.name = f"{where} ({value['path']})" if value.get("path") else where
        return f
    path = value.get("path") if isinstance(value, dict) else value
    if not isinstance(path, str) or not path:
        raise SuiteError(f"{where}: no file bytes or path in the cell ({type(value).__name__})")
    p = Path(path).expanduser()
    return base / p if base is not None and not p.is_absolute() and (base / p).exists() else p


@dataclass
class SplitRows:
    inputs: Any
    labels: list  # raw: ClassLabel indices, strings, integers
    rows: int = 0
    unlabelled: int = 0


def read_cell(cell, at: str, kind: str, read: Callable | None, base: Path | None):
    if kind != "text":
        return read(media(cell, at, base), at)
    if not isinstance(cell, str) or not cell.strip():
        raise SuiteError(f"{at}: no text in the cell ({cell!r:.40})")
    return cell if read is None else read(cell, at)


def read_split(ds, where: str, column: str, label_column: str, kind: str, read: Callable | None,
               stack: Callable | None, class_label: bool, base: Path | None, bad: list[str], chunk: int) -> SplitRows:
    """Every row's cell read (a cell that cannot be read skips its row, into ``bad``), ``chunk`` rows
    at a time, each chunk's inputs joined by ``stack``."""
    out, done = SplitRows([], []), []
    for batch in ds.iter(batch_size=chunk):
        pending = []
        for cell, label in zip(batch[column], batch[label_column]):
            at = f"{where}[{out.rows}]"
            out.rows += 1
            if label is None or (class_label and label < 0):
                out.unlabelled += 1
                continue
            try:
                pending.append(read_cell(cell, at, kind, read, base))
            except SuiteError as e:
                bad.append(str(e))
                continue
            out.labels.append(label)
        if pending:
            done.append(pending if stack is None else stack(pending))
    if stack is None:
        out.inputs = [x for part in done for x in part]
    else:
        out.inputs = torch.cat(done) if done else None
    return out


def load_labelled(spec: str, split: str | None, column: str, label_column: str, read: Callable | None = None,
                  stack: Callable | None = None, kind: str = "text", chunk: int = 256) -> Labelled:
    """``hf:NAME_OR_PATH`` -> its labelled rows, read into memory.

    ``column`` holds the inputs, ``label_column`` the labels; ``kind`` ("text", "image", "audio")
    names the input column's setting, ``--data.<kind>_column``, in errors. ``read(source, where)`` turns
    an image or audio cell, given as a binary file object (the bytes stored in the data set) or a Path,
    into an input; it raises SuiteError for a cell it cannot read: the row is skipped, counted and
    reported once, as an empty or non-string text is. Text needs no ``read``. ``stack(list of inputs)``
    (e.g. ``torch.stack``) joins every ``chunk`` of them into one tensor; without it they stay a list.
    """
    if not spec.startswith("hf:") or not spec[3:]:
        raise SuiteError(f"data.dataset {spec!r}: a Hugging Face data set is hf:NAME_OR_PATH")
    name = spec[3:]
    datasets = import_datasets()
    from datasets.exceptions import DatasetsError

    found, base = open_dataset(name)
    chosen = choose_splits(found, split, name)
    names, rows, bad = None, {}, []
    for ours in sorted(chosen, key=["all", "train", "val", "test"].index):
        hf_name, ds = chosen[ours]
        where = f"hf:{name} {hf_name}"
        if ds is None:
            raise SuiteError(f"{where}: the split is empty")
        ds, split_names = prepare_columns(datasets, ds, where, column, label_column, kind)
        if names is None:
            names = split_names
        elif split_names is not None and split_names != names:
            raise SuiteError(f"{where}: its ClassLabel names {split_names} differ from training's {names}")
        try:
            got = read_split(ds, where, column, label_column, kind, read, stack, names is not None, base, bad, chunk)
        except (OSError, ValueError, DatasetsError) as e:  # a damaged file, a stream cut off
            raise SuiteError(f"{where}: cannot read its rows: {first_line(e)}") from None
        if got.rows == 0:
            raise SuiteError(f"{where}: the split is empty")
        if not got.labels and ours in ("val", "test") and got.unlabelled:
            print(f"suite: {kind}: {where} has no labels: left out, as if the data set had no such split", file=sys.stderr)
            continue
        if not got.labels:
            reason = f"first: {bad[0]}" if bad else f"all {got.unlabelled} rows lack a label"
            raise SuiteError(f"{where}: none of the {got.rows} rows could be used ({reason})")
        rows[ours] = got
    if bad:
        print(f"suite: {kind}: skipped {len(bad)} unreadable row(s) of hf:{name}; first: {bad[0]}", file=sys.stderr)
    unlabelled = sum(r.unlabelled for r in rows.values())
    if unlabelled:
        print(f"suite: {kind}: skipped {unlabelled} row(s) of hf:{name} without a label", file=sys.stderr)
    classes, parts = label_parts(rows, names, name)
    return Labelled(classes, parts, len(bad))


def label_parts(rows: dict[str, SplitRows], names: list[str] | None, name: str):
    """Raw labels -> (class names, {split: (inputs, label indices)}), the splits as ``complete_splits``
    takes them: a lone train split is the pool "all"; train + val makes val the test split."""
    train = rows.get("train") or rows["all"]
    if names is None:
        try:
            values = sorted(set(train.labels), key=lambda v: (isinstance(v, str), v))
        except TypeError:
            raise SuiteError(f"hf:{name}: the labels are not one class label a row ({train.labels[0]!r})") from None
        names = [str(v) for v in values]
        index = {v: i for i, v in enumerate(values)}
        for split, r in rows.items():
            unknown = sorted({str(v) for v in r.labels if v not in index})
            if unknown:
                raise SuiteError(f"hf:{name} {split}: labels {unknown[:5]} are not among the training labels {names[:10]}")
            r.labels = [index[v] for v in r.labels]
    if len(names) < 2:
        raise SuiteError(f"hf:{name}: classification needs at least two classes, found {names}")
    parts = {s: (r.inputs, torch.tensor(r.labels, dtype=torch.long)) for s, r in rows.items()}
    if set(parts) == {"train"}:
        parts = {"all": parts["train"]}
    elif set(parts) == {"train", "val"}:
        parts = {"train": parts["train"], "test": parts["val"]}
    return names, parts
