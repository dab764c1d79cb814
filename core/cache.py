"""Caches of generated or downloaded data: where they live, and one writer at a time.

A task's ``prepare_data`` (downloads, generation, caches) runs under a file lock, so two
processes (DDP ranks, parallel runs of a transfer matrix) never write one cache; the task's
``build_tokenizer`` and ``build_data`` then only load.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


def cache_dir(name: str, setting: str | None = None) -> Path:
    """Where a plugin keeps data it generated or downloaded: ``setting`` (a ``data.cache_dir``)
    if given, else ``$XDG_CACHE_HOME/suite/<name>`` (``~/.cache/suite/<name>``)."""
    if setting:
        return Path(setting).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "suite" / name


@contextmanager
def file_lock(path: Path):
    """Hold ``<path>.lock`` (an OS file lock): one process at a time, on this machine or a shared file system."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        yield


def prepare(task, cfg: dict) -> None:
    """Run ``task.prepare_data(cfg)`` under the task's lock: the first process makes the caches,
    the others wait and then find them made."""
    with file_lock(cache_dir("locks") / task.name):
        task.prepare_data(cfg)
