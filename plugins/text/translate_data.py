"""The translate task's data: pairs of source and target text, from one of four places.

  numbers      numbers written out in both languages by num2words (built in, offline): training
               up to ``data.max_digits`` digits; "val" and "test" are numbers of that length held
               out by a hash, "test_long" numbers longer than any in training
  dictionary   the FreeDict dictionary of the language pair (dictd format, as Debian's
               dict-freedict-eng-deu installs it), its short clean entries and examples as word and
               phrase pairs, mixed into the numbers' training; "test_dict" is held out by a hash.
               A headword with several translations is scored against any of them (references)
  pairs file   ``--data.pairs FILE``: TSV (source<TAB>target) or JSON Lines ({"source", "target"},
               or {"translation": {LANG: ...}}), in place of the built-in data, split by a hash
  hf:          ``--data.dataset hf:NAME_OR_PATH``: a Hugging Face data set with a translation
               column (each row {"translation": {"en": ..., "de": ...}}, as WMT sets store theirs)

A pair is a :class:`Pair`; ``PairSet`` and ``TrainStream`` turn pairs into the sample dicts of
``suite.Seq2SeqTask`` ({"source": ids, "target": ids, "references": texts}).
"""
from __future__ import annotations

import functools
import gzip
import json
import os
import random
import re
import sys
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

import suite

FREEDICT_DIR = Path("/usr/share/dictd")
# ISO 639-1 (num2words, --data.source_lang) -> ISO 639-3 (FreeDict file names), for the common pairs
ISO3 = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "nl": "nld", "pt": "por", "sv": "swe",
        "da": "dan", "no": "nor", "fi": "fin", "pl": "pol", "cs": "ces", "ru": "rus", "tr": "tur", "hu": "hun"}
B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


@dataclass(frozen=True)
class Pair:
    """A source text, its target (what training teaches) and every acceptable output (scoring)."""

    source: str
    target: str
    references: tuple[str, ...] = ()

    def refs(self) -> list[str]:
        return list(self.references) or [self.target]


@functools.lru_cache(maxsize=None)
def note(message: str) -> None:
    """Say ``message`` on stderr, once per process."""
    print(f"translate: {message}", file=sys.stderr)


def text(value: str) -> str:
    """Text as pairs keep it: NFC, surrounding white space removed."""
    return unicodedata.normalize("NFC", value).strip()


# -- numbers ---------------------------------------------------------------------------------------
def check_language(lang: str, setting: str) -> None:
    """A language num2words writes numbers in, else one clear error."""
    from num2words import CONVERTER_CLASSES

    if lang not in CONVERTER_CLASSES:
        raise suite.SuiteError(f"data.{setting} {lang!r}: num2words does not write numbers in that language "
                               f"(it has {', '.join(sorted(CONVERTER_CLASSES))})")


def number_pair(n: int, source_lang: str, target_lang: str) -> Pair:
    from num2words import num2words

    return Pair(num2words(n, lang=source_lang), num2words(n, lang=target_lang))


def number_split(n: int, holdout_percent: float) -> str:
    """Fixed per number: half of the held-out share is val, half test."""
    return suite.hash_split(f"number {n}", holdout_percent / 2, holdout_percent / 2)


def draw_number(rng: random.Random, digits: tuple[int, int]) -> int:
    """A number of a uniform count of digits in ``digits``, then uniform among those."""
    k = rng.randint(*digits)
    return rng.randrange(10 ** (k - 1) if k > 1 else 0, 10 ** k)


def number_set(d: dict, split: str | None, size: int, seed: int, digits: tuple[int, int]) -> list[Pair]:
    """Up to ``size`` distinct numbers of ``split`` (None: any; longer numbers are all held out)."""
    rng, seen = random.Random(seed), {}
    for _ in range(200 * size):
        if len(seen) == size:
            break
        n = draw_number(rng, digits)
        if n not in seen and (split is None or number_split(n, d["holdout_percent"]) == split):
            seen[n] = number_pair(n, d["source_lang"], d["target_lang"])
    return list(seen.values())


def train_numbers(d: dict, count: int, seed: int) -> list[Pair]:
    """``count`` training numbers (repeats allowed), as the training stream draws them."""
    rng, out = random.Random(seed), []
    while len(out) < count:
        n = draw_number(rng, (d["min_digits"], d["max_digits"]))
        if number_split(n, d["holdout_percent"]) == "train":
            out.append(number_pair(n, d["source_lang"], d["target_lang"]))
    return out


# -- the FreeDict dictionary (dictd format) --------------------------------------------------------
@dataclass
class DictReport:
    """What reading a dictionary kept and skipped, said in one line."""

    entries: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)

    def line(self, name: str) -> str:
        why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
        return f"{name}: {self.kept} word and phrase pairs from {self.entries} entries" + (f"; skipped {why}" if why else "")


def find_dictionary(d: dict) -> tuple[Path, bool] | None:
    """(the dictd files' common path, whether headwords are the target language) of
    ``data.dictionary``: auto (the pair's FreeDict file if installed, either way round), none, freedict
    (the same, an error when not installed) or a path; None: no dictionary."""
    setting = str(d.get("dictionary") or "none")
    if setting.lower() in ("none", "off", "false"):
        return None
    src, tgt = ISO3.get(d["source_lang"]), ISO3.get(d["target_lang"])
    if setting in ("auto", "freedict"):
        for a, b, reverse in ((src, tgt, False), (tgt, src, True)):
            base = FREEDICT_DIR / f"freedict-{a}-{b}"
            if a and b and with_suffix(base, ".index").is_file():
                return base, reverse
        wanted = f"freedict-{src or d['source_lang']}-{tgt or d['target_lang']}"
        message = (f"data.dictionary {setting}: no FreeDict {d['source_lang']}-{d['target_lang']} dictionary is installed "
                   f"({FREEDICT_DIR / wanted}.index; Debian's dict-{wanted} package)")
        if setting == "freedict":
            raise suite.SuiteError(message + "; set --data.dictionary none")
        note(f"{message}: numbers only")
        return None
    base = Path(re.sub(r"\.(index|dict|dict\.dz)$", "", setting)).expanduser()
    if not with_suffix(base, ".index").is_file():
        raise suite.SuiteError(f"data.dictionary {setting}: no dictd file {base}.index (a dictionary is FILE.index with "
                               f"FILE.dict.dz or FILE.dict)")
    m = re.fullmatch(r"freedict-(\w+)-(\w+)", base.name)
    return base, bool(m and m[1] == tgt and m[2] == src)


def with_suffix(base: Path, suffix: str) -> Path:
    return base.with_name(base.name + suffix)


def b64_number(value: str) -> int:
    """A dictd offset or length: base64 digits, most significant first."""
    n = 0
    for c in value:
        n = n * 64 + B64[c]
    return n


def read_body(base: Path) -> bytes:
    for suffix in (".dict.dz", ".dict"):
        path = with_suffix(base, suffix)
        if path.is_file():
            try:
                return gzip.open(path).read() if suffix == ".dict.dz" else path.read_bytes()
            except (OSError, EOFError) as e:
                raise suite.SuiteError(f"{path}: cannot read the dictionary: {e}") from None
    raise suite.SuiteError(f"{base}.dict.dz: not found (a dictd dictionary is FILE.index with FILE.dict.dz or FILE.dict)")


def dictd_entries(base: Path, report: DictReport):
    """Every entry of a dictd dictionary once, as text; unreadable index lines are counted."""
    body, seen = read_body(base), set()
    index = with_suffix(base, ".index")
    try:
        lines = index.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise suite.SuiteError(f"{index}: cannot read the dictionary index: {e.strerror}") from None
    for line in lines:
        parts = line.split("\t")
        try:
            offset, length = b64_number(parts[1]), b64_number(parts[2])
        except (IndexError, KeyError):
            report.skipped["unreadable index lines"] += 1
            continue
        if parts[0].startswith(("00database", "00-database")) or offset in seen:
            continue
        seen.add(offset)
        if offset + length > len(body) or length == 0:
            report.skipped["index lines past the end of the dictionary"] += 1
            continue
        report.entries += 1
        yield body[offset:offset + length].decode("utf-8", errors="replace")


MARKUP = re.compile(r"<[^>]*>|\[[^\]]*\]|/[^/]*/|\{[^}]*\}")  # <masc>, [bot.], /pronunciation/, {see}
CLEAN = re.compile(r"[^\W\d_]+(?:(?: |-|'| - )[^\W\d_]+)*[.!?]?")
EXAMPLE = re.compile(r'^\s+"(.+)"\s+-\s+(.+)$')
PLACEHOLDERS = {"sb", "sth", "sb's", "sth's", "etw", "jd", "jdn", "jdm", "jds", "od", "bzw", "usw", "etc"}


def clean(value: str, max_words: int) -> str | None:
    """A short phrase of plain words, or None: no placeholders (sb., etw.), digits, brackets."""
    value = " ".join(value.split())
    words = value.split()
    if not CLEAN.fullmatch(value) or len(words) > max_words or any(w.strip(".!?").lower() in PLACEHOLDERS for w in words):
        return None
    return unicodedata.normalize("NFC", value)


def alternatives(value: str, max_words: int) -> list[str]:
    """The clean ones of the comma-separated translations of a line, its markup removed."""
    return [t for t in (clean(v, max_words) for v in MARKUP.sub(" ", value).split(",")) if t]


def entry_links(entry: str, max_words: int, report: DictReport) -> list[tuple[str, str, int]]:
    """An entry -> (English, German, weight) links: the headword with each clean translation, and
    each clean example. Weight: the entry's lines (examples, notes, links), a hint of how common
    the sense is."""
    lines = entry.strip("\n").split("\n")
    if len(lines) < 2:
        report.skipped["entries without a translation"] += 1
        return []
    head = clean(MARKUP.sub(" ", re.sub(r"\(.*\)", " ", lines[0])).strip(), max_words)
    links = [(head, t, len(lines)) for t in alternatives(lines[1], max_words)] if head else []
    if not links:
        why = f"entries not plain words of at most {max_words}" if lines[1].strip() else "entries without a translation"
        report.skipped[why] += 1
    for line in lines[2:]:
        m = EXAMPLE.match(line)
        source = m and clean(m[1], max_words)
        if source:
            links += [(source, t, 1) for t in alternatives(m[2], max_words)]
    return links


def group_links(links: list[tuple[str, str, int]], reverse: bool) -> list[Pair]:
    """Links -> one pair per source text: its references ordered by how many entries give them
    (then the weight of their best entry), the first of them the target."""
    by_source: dict[str, Counter] = {}
    best: dict[tuple[str, str], int] = {}
    for en, de, weight in links:
        source, target = (de, en) if reverse else (en, de)
        by_source.setdefault(source, Counter())[target] += 1
        best[source, target] = max(best.get((source, target), 0), weight)
    pairs = []
    for source, counts in by_source.items():
        refs = sorted(counts, key=lambda t: (-counts[t], -best[source, t]))
        pairs.append(Pair(source, refs[0], tuple(refs)))
    return pairs


def read_dictionary(base: Path, reverse: bool, max_words: int) -> tuple[list[Pair], DictReport]:
    """A dictd dictionary -> its pairs, one per source text, and what was skipped."""
    report, links = DictReport(), []
    for entry in dictd_entries(base, report):
        links += entry_links(entry, max_words, report)
    pairs = group_links(links, reverse)
    report.kept = len(pairs)
    if not pairs:
        raise suite.SuiteError(f"{base}.index: no usable entries ({report.line(base.name)})")
    return pairs, report


CACHE_VERSION = 1


@functools.lru_cache(maxsize=2)
def dictionary_pairs(base: Path, reverse: bool, max_words: int) -> list[Pair]:
    """The pairs of a dictd dictionary, parsed once into a JSON file under
    ``suite.cache_dir("translate")`` that serves while the dictionary's files stay the same."""
    files = [with_suffix(base, s) for s in (".index", ".dict.dz", ".dict") if with_suffix(base, s).is_file()]
    key = {"version": CACHE_VERSION, "base": str(base.resolve()), "reverse": reverse, "max_words": max_words,
           "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
    digest = zlib.crc32(json.dumps(key, sort_keys=True).encode())
    path = suite.cache_dir("translate") / f"{base.name}-{'reversed-' if reverse else ''}{max_words}-{digest:08x}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached["key"] == key:
            note(cached["report"])
            return [Pair(source, refs[0], tuple(refs)) for source, refs in cached["pairs"]]
    except (OSError, ValueError, KeyError, IndexError):
        pass
    pairs, report = read_dictionary(base, reverse, max_words)
    note(report.line(base.name))
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"key": key, "report": report.line(base.name),
                                   "pairs": [[p.source, p.refs()] for p in pairs]}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a cache that cannot be written: read the dictionary again next time
        pass
    return pairs


def dictionary_splits(pairs: list[Pair], d: dict) -> dict[str, list[Pair]]:
    """{"train": data.dict_train pairs, "test_dict": data.dict_test pairs}: held out by a hash of the
    source (data.dict_holdout_percent of all), each the first ones in the order of another hash."""
    held, rest = [], []
    for p in pairs:
        (held if suite.hash_bucket(f"dict {p.source}") < d["dict_holdout_percent"] else rest).append(p)

    def first(part: list[Pair], n: int) -> list[Pair]:
        return sorted(part, key=lambda p: zlib.crc32(f"order {p.source}".encode()))[:int(n)]

    return {"train": first(rest, d["dict_train"]), "test_dict": first(held, d["dict_test"])}


# -- a file of pairs -------------------------------------------------------------------------------
def read_pairs(path: str, d: dict) -> list[Pair]:
    """A TSV (source<TAB>target) or JSON Lines file of pairs; blank lines are skipped, anything else
    that is not a pair is one error naming the line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise suite.SuiteError(f"data.pairs {path}: no such file")
    try:
        lines = p.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = p.read_bytes()[:e.start].count(b"\n") + 1
        raise suite.SuiteError(f"{p}:{line}: not UTF-8 text") from None
    except OSError as e:
        raise suite.SuiteError(f"{p}: cannot read: {e.strerror}") from None
    jsonl = p.suffix.lower() in (".jsonl", ".json", ".ndjson") or (
        p.suffix.lower() not in (".tsv", ".tab", ".txt") and next((l for l in lines if l.strip()), "").lstrip().startswith("{"))
    read = json_pair if jsonl else tsv_pair
    pairs = [read(line, f"{p}:{i}", d) for i, line in enumerate(lines, 1) if line.strip()]
    if not pairs:
        raise suite.SuiteError(f"{p}: no pairs in the file")
    return pairs


def tsv_pair(line: str, where: str, d: dict) -> Pair:
    fields = line.split("\t")
    if len(fields) != 2:
        raise suite.SuiteError(f"{where}: a TSV line must be source<TAB>target, this one has {len(fields)} field(s)")
    return checked(fields[0], fields[1], where)


def json_pair(line: str, where: str, d: dict) -> Pair:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise suite.SuiteError(f"{where}: not valid JSON: {e.msg}") from None
    if not isinstance(row, dict):
        raise suite.SuiteError(f"{where}: a JSON Lines record must be an object, not {type(row).__name__}")
    if "translation" in row:
        return translation_pair(row["translation"], where, d)
    if "source" not in row or "target" not in row:
        raise suite.SuiteError(f"{where}: a record needs \"source\" and \"target\" (or \"translation\"), "
                               f"it has {', '.join(map(repr, row)) or 'no keys'}")
    return checked(row["source"], row["target"], where)


def translation_pair(cell, where: str, d: dict) -> Pair:
    """{"en": ..., "de": ...} -> the pair of the run's languages."""
    src, tgt = d["source_lang"], d["target_lang"]
    if not isinstance(cell, dict):
        raise suite.SuiteError(f"{where}: \"translation\" must map languages to texts, not {type(cell).__name__}")
    missing = [lang for lang in (src, tgt) if lang not in cell]
    if missing:
        raise suite.SuiteError(f"{where}: the translation has no {missing[0]!r} text (it has {', '.join(map(repr, cell))}); "
                               f"set --data.source_lang / --data.target_lang")
    return checked(cell[src], cell[tgt], where)


def checked(source, target, where: str) -> Pair:
    for name, value in (("source", source), ("target", target)):
        if not isinstance(value, str):
            raise suite.SuiteError(f"{where}: the {name} must be text, not {type(value).__name__}")
        if not value.strip():
            raise suite.SuiteError(f"{where}: the {name} text is empty")
    return Pair(text(source), text(target))


def split_by_hash(pairs: list[Pair], holdout_percent: float) -> dict[str, list[Pair]]:
    """One pool -> train / val / test, fixed by a hash of the source text."""
    out = {"train": [], "val": [], "test": []}
    for p in pairs:
        out[suite.hash_split(f"pair {p.source}", holdout_percent / 2, holdout_percent / 2)].append(p)
    return out


def complete(parts: dict[str, list[Pair]], holdout_percent: float) -> dict[str, list[Pair]]:
    """A data set's own splits -> train, val, test: one pool ("all" or a lone train) is split by
    hash; train + val makes val the test split; a missing val is cut from train by hash."""
    if set(parts) <= {"all", "train"}:
        return split_by_hash(parts.get("all") or parts["train"], holdout_percent)
    if "test" not in parts:
        parts = {"train": parts["train"], "test": parts["val"]}
    if "val" not in parts:
        cut = {"train": [], "val": []}
        for p in parts["train"]:
            cut[suite.hash_split(f"pair {p.source}", holdout_percent / 2, 0)].append(p)
        parts = {**cut, "test": parts["test"]}
    return {s: parts[s] for s in ("train", "val", "test")}


# -- a Hugging Face data set ------------------------------------------------------------------------
def empty(cell, d: dict) -> bool:
    """A row whose source or target text is missing or blank (skipped and counted, not an error)."""
    return isinstance(cell, dict) and any(lang in cell and not (isinstance(cell[lang], str) and cell[lang].strip())
                                          for lang in (d["source_lang"], d["target_lang"]))


def hf_pairs(d: dict) -> dict[str, list[Pair]]:
    """``hf:NAME_OR_PATH`` -> its pairs by split ("train", "val", "test", or one pool "all"); rows
    with an empty text are skipped and counted."""
    spec, hf = d["dataset"], suite.hf_datasets
    if not spec.startswith("hf:") or not spec[3:]:
        raise suite.SuiteError(f"data.dataset {spec!r}: a Hugging Face data set is hf:NAME_OR_PATH")
    name, column = spec[3:], d["translation_column"]
    found, _ = hf.open_dataset(name)
    out, skipped = {}, Counter()
    for ours, (hf_name, ds) in hf.choose_splits(found, d.get("split"), name).items():
        where = f"hf:{name} {hf_name}"
        if ds is None:
            continue
        if column not in hf.columns_of(ds):
            raise suite.SuiteError(f"{where}: no column {column!r} (columns: {', '.join(hf.columns_of(ds))}); "
                                   f"set --data.translation_column")
        try:
            out[ours] = hf_rows(ds.select_columns([column]), column, where, d, skipped)
        except (OSError, ValueError) as e:  # a damaged file, a stream cut off
            raise suite.SuiteError(f"{where}: cannot read its rows: {hf.first_line(e)}") from None
    if skipped:
        note(f"skipped {skipped.total()} row(s) of hf:{name} with an empty text")
    if not any(out.values()):
        raise suite.SuiteError(f"hf:{name}: no pairs in the data set")
    return {s: pairs for s, pairs in out.items() if pairs}


def hf_rows(rows, column: str, where: str, d: dict, skipped: Counter) -> list[Pair]:
    """The pairs of one split's rows, at most ``data.max_rows`` of them."""
    out, limit = [], d.get("max_rows")
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            break
        if empty(row[column], d):
            skipped[where] += 1
            continue
        out.append(translation_pair(row[column], f"{where}[{i}]", d))
    return out


# -- pairs as samples ---------------------------------------------------------------------------------
def encode_pair(tokenizer, pair: Pair, max_tokens: int) -> tuple[dict, bool]:
    """(the sample dict of a pair: source ids, target ids without BOS/EOS, references; whether it
    was cut): both sides are cut to ``max_tokens``, the target to one less, for its EOS."""
    source, target = tokenizer.encode_source(pair.source), tokenizer.encode_target(pair.target)
    sample = {"source": source[:max_tokens], "target": target[:max_tokens - 1], "references": pair.refs()}
    return sample, len(source) > max_tokens or len(target) > max_tokens - 1


class PairSet(Dataset):
    """A fixed list of pairs, encoded once; pairs cut to ``max_tokens`` are counted and reported."""

    def __init__(self, tokenizer, pairs: list[Pair], max_tokens: int, name: str = "pairs"):
        self.pairs = pairs
        encoded = [encode_pair(tokenizer, p, max_tokens) for p in pairs]
        self.items = [sample for sample, _ in encoded]
        cut = sum(was_cut for _, was_cut in encoded)
        if cut:
            note(f"{name}: cut {cut} of {len(pairs)} pair(s) to data.max_tokens {max_tokens} tokens")

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class TrainStream(suite.Stream):
    """Training numbers, ``data.epoch_size`` to an epoch, with dictionary pairs mixed in: each
    sample is one of ``extra`` with probability ``data.dict_percent`` / 100."""

    indexed = False  # a sample is drawn from the batch's generator, whatever its place

    def __init__(self, tokenizer, d: dict, seed: int, extra: list[Pair]):
        super().__init__(seed)
        self.tokenizer, self.d = tokenizer, d
        self.extra = [encode_pair(tokenizer, p, d["max_tokens"])[0] for p in extra]

    def size(self):
        return int(self.d["epoch_size"])

    def samples(self, indices, generator):
        rng, d, out = random.Random(generator.initial_seed()), self.d, []
        while len(out) < len(indices):
            if self.extra and rng.random() * 100 < d["dict_percent"]:
                out.append(rng.choice(self.extra))
                continue
            n = draw_number(rng, (d["min_digits"], d["max_digits"]))
            if number_split(n, d["holdout_percent"]) == "train":
                out.append(encode_pair(self.tokenizer, number_pair(n, d["source_lang"], d["target_lang"]), d["max_tokens"])[0])
        return out
