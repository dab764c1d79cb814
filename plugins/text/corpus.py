"""Text that needs no network: Python's own documentation, and the user's files.

Built in:
  pydoc_topics        the Language Reference sections that ``help()`` shows (``pydoc_data.topics``),
                      about 460 kB of English, in every CPython installation
  stdlib_docstrings   module, class and function docstrings of the installed standard library,
                      read with ``ast`` (nothing is imported), about 1.7 MB
User files (``--data.files``, globs): .txt (a file is a document), .jsonl and .csv (a record is a
document; ``data.text_column`` names its text). Bytes that are not UTF-8 are kept (see tokenizer.py)
and counted, never fatal; a record that cannot be read is one clear error naming file and line.
"""
from __future__ import annotations

import ast
import csv
import glob
import io
import json
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import suite

from .tokenizer import SURROGATE_FREE

# The standard library packages of the built-in text-classify set: each docstring is labelled with
# the package whose source it comes from. All ship with every CPython from 3.10 on.
STDLIB_CLASSES = ("asyncio", "email", "http", "importlib", "logging", "multiprocessing", "unittest", "xml")


@dataclass
class Record:
    text: str
    label: str = ""
    where: str = ""  # "file:line", for messages
    split: str = ""  # "train", "val" or "test" where the data set gives its splits; "": by hash


@dataclass
class Report:
    """What reading skipped or repaired, reported once after reading."""

    non_utf8: int = 0
    empty: int = 0
    files: list[str] = field(default_factory=list)

    def note(self) -> None:
        parts = []
        if self.non_utf8:
            parts.append(f"{self.non_utf8} record(s) held bytes that are not UTF-8 (kept as bytes; U+FFFD for subword tokenizers)")
        if self.empty:
            parts.append(f"{self.empty} empty record(s) skipped")
        if parts:
            print("text data: " + "; ".join(parts), file=sys.stderr)


def decode(raw: bytes, report: Report) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        report.non_utf8 += 1
        return raw.decode("utf-8", "surrogateescape")


# -- built-in text ------------------------------------------------------------------------------
def pydoc_topics() -> list[Record]:
    from pydoc_data.topics import topics

    return [Record(text, where=f"pydoc_data.topics[{name!r}]") for name, text in sorted(topics.items())]


def _stdlib_files():
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if rel[0] in ("site-packages", "dist-packages") or {"test", "tests", "idle_test"} & set(rel):
            continue
        yield rel, path


def stdlib_docstrings(packages: tuple[str, ...] | None = None, min_chars: int = 40) -> list[Record]:
    """Docstrings (module, class, function) of the standard library; ``label`` is the top-level
    module or package the docstring comes from. Sources that do not parse are skipped."""
    out, seen = [], set()
    for rel, path in _stdlib_files():
        package = rel[0][:-3] if len(rel) == 1 else rel[0]
        if packages is not None and package not in packages:
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars and doc not in seen:
                    seen.add(doc)
                    line = getattr(node, "lineno", 1)
                    out.append(Record(doc, package, f"{'/'.join(rel)}:{line}"))
    return out


def builtin_corpus(names: list[str]) -> list[Record]:
    makers = {"pydoc_topics": pydoc_topics, "stdlib_docstrings": stdlib_docstrings}
    out = []
    for name in names:
        if name not in makers:
            raise suite.SuiteError(f"data.corpus: unknown built-in text {name!r} (choose from {', '.join(makers)})")
        out += makers[name]()
    return out


# -- user files -----------------------------------------------------------------------------------
def expand(patterns) -> list[Path]:
    if isinstance(patterns, str):
        patterns = [patterns]
    files = []
    for pattern in patterns or []:
        hits = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        if not hits:
            raise suite.SuiteError(f"data.files: {pattern!r} matches no file")
        files += [Path(h) for h in hits if Path(h).is_file()]
    return files


def _column(row: dict, name: str, where: str, kind: str) -> str:
    if name not in row:
        raise suite.SuiteError(f"{where}: no {kind} column {name!r} (columns: {', '.join(map(str, row)) or 'none'}); "
                               f"set --data.{kind}_column")
    value = row[name]
    if isinstance(value, (dict, list)) or value is None:
        raise suite.SuiteError(f"{where}: the {kind} column {name!r} holds {type(value).__name__}, not text")
    return str(value)


def read_files(files: list[Path], text_column: str, label_column: str | None, report: Report) -> list[Record]:
    """Records from .txt / .jsonl / .csv / .tsv files. ``label_column`` None: no labels wanted."""
    out = []
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise suite.SuiteError(f"{path}: cannot read: {e.strerror}") from None
        suffix = path.suffix.lower()
        if suffix == ".txt":
            if label_column is not None:
                raise suite.SuiteError(f"{path}: a .txt file has no labels; text-classify reads .csv or .jsonl")
            out.append(Record(decode(raw, report), where=str(path)))
        elif suffix in (".jsonl", ".json", ".ndjson"):
            for n, line in enumerate(raw.splitlines(), 1):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    row = json.loads(decode(line, report).translate(SURROGATE_FREE))
                except json.JSONDecodeError as e:
                    raise suite.SuiteError(f"{where}: not valid JSON: {e.msg}") from None
                if not isinstance(row, dict):
                    raise suite.SuiteError(f"{where}: a JSON Lines record must be an object, not {type(row).__name__}")
                out.append(Record(_column(row, text_column, where, "text"),
                                  _column(row, label_column, where, "label") if label_column else "", where))
        elif suffix in (".csv", ".tsv"):
            text = decode(raw, report)
            reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
            try:
                for row in reader:
                    where = f"{path}:{reader.line_num}"
                    if None in row:
                        raise suite.SuiteError(f"{where}: more fields than the header has")
                    short = [c for c in (text_column, label_column) if c and c in row and row[c] is None]
                    if short:
                        raise suite.SuiteError(f"{where}: fewer fields than the header has (no {short[0]!r})")
                    out.append(Record(_column(row, text_column, where, "text"),
                                      _column(row, label_column, where, "label") if label_column else "", where))
            except csv.Error as e:
                raise suite.SuiteError(f"{path}:{reader.line_num}: not valid CSV: {e}") from None
        else:
            raise suite.SuiteError(f"{path}: unsupported file type {suffix or '(none)'!r} (use .txt, .jsonl or .csv)")
        report.files.append(str(path))
    kept = [r for r in out if r.text.strip()]
    report.empty += len(out) - len(kept)
    return kept


# -- pieces (split by suite.hash_split of their text) ------------------------------------------------
def chunk(records: list[Record], min_chars: int) -> list[Record]:
    """Cut documents into pieces of at least ``min_chars`` at paragraph boundaries, so that held-out
    text is spread over many documents rather than a few whole topics."""
    out = []
    for r in records:
        piece = []
        for para in r.text.split("\n\n"):
            piece.append(para)
            if sum(len(p) for p in piece) >= min_chars:
                out.append(Record("\n\n".join(piece), r.label, r.where))
                piece = []
        if piece:
            out.append(Record("\n\n".join(piece), r.label, r.where))
    return out
