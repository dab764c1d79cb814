"""Files written whole or not at all, and JSON read back with one line naming the file when it is
damaged: what the run directories, the transfer matrix and the checkpoints share."""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import SuiteError


@contextmanager
def atomic(path):
    """``with atomic(path) as tmp:`` write ``tmp``; when the block ends it is renamed over ``path``
    (``os.replace``), and removed if the block raises: a process killed while writing leaves the
    previous file, or none, never part of one. The temporary name is hidden and per process."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with atomic(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data, indent: int = 2) -> None:
    write_text(path, json.dumps(data, indent=indent) + "\n")


DAMAGED = "the run directory is damaged: restore the file, or train the run again"


def read_json(path: Path, hint: str = DAMAGED, keys=()) -> dict:
    """The JSON object in ``path``, which must hold ``keys``; a ``SuiteError`` that names the file,
    says what is wrong with it and ends with ``hint`` (what to do) otherwise."""
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise SuiteError(f"{path}: missing; {hint}") from None
    except UnicodeDecodeError:
        raise SuiteError(f"{path}: not valid JSON (binary garbage, not text); {hint}") from None
    except json.JSONDecodeError as e:
        raise SuiteError(f"{path}: not valid JSON (truncated or corrupt at line {e.lineno} column {e.colno}); {hint}") from None
    except OSError as e:
        raise SuiteError(f"{path}: unreadable ({e.strerror or e}); {hint}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: holds a JSON {type(data).__name__}, not an object (damaged, or not a file of suite's); {hint}")
    return require(data, path, keys, hint)


def require(data: dict, path: Path, keys, hint: str = DAMAGED) -> dict:
    """``data`` (read from ``path``) if it holds every one of ``keys``; a ``SuiteError`` naming the first missing."""
    missing = [k for k in keys if k not in data]
    if missing:
        raise SuiteError(f"{path}: no {missing[0]!r} (incomplete, or written by another version of suite); {hint}")
    return data
