"""The translate task: text in one language to text in another (English to German by default) on
an encoder-decoder preset, trained from data the machine has (translate_data.py: numbers written
out by num2words, the FreeDict dictionary) or the user's pairs.

Reads top to bottom: the tokenizer (byte-level BPE, one vocabulary for both languages, learned
from the training pairs), the data: settings, the task.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Optional

import suite

from . import translate_data as data

TOKENIZER_NUMBERS = 5000  # training numbers the vocabulary is learned from (both languages)
TOKENIZER_PAIRS = 200000  # at most this many pairs of a file or data set


# -- tokenizer ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class BPETokenizer(suite.Tokenizer):
    """Byte-level BPE (the ``tokenizers`` library): any text encodes, UTF-8 bytes being the base
    vocabulary, and decodes back exactly. One vocabulary for source and target; ids 0-3 are PAD,
    BOS, EOS and UNK. Its state is the library's own JSON (``Tokenizer.to_str()``)."""

    bpe: dict = dataclasses.field(repr=False)

    PAD, BOS, EOS, UNK = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")

    @classmethod
    def train(cls, texts, vocab_size: int) -> "BPETokenizer":
        """A vocabulary of about ``vocab_size`` learned from ``texts`` (an iterable of strings)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=list(cls.SPECIALS),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, trainer)
        return cls(json.loads(tok.to_str()))

    @functools.cached_property
    def library(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_str(json.dumps(self.bpe))

    @property
    def vocab_size(self) -> int:
        return self.library.get_vocab_size()

    def encode_source(self, text: str) -> list[int]:
        return self.library.encode(text, add_special_tokens=False).ids

    def encode_target(self, text: str) -> list[int]:
        return self.library.encode(text, add_special_tokens=False).ids

    def decode_target(self, ids) -> str:
        return self.library.decode([int(i) for i in ids], skip_special_tokens=True)

    def state(self):
        return {"bpe": self.bpe}


# -- settings -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class TranslateData(suite.DataSettings):
    """data: the language pair and the pairs: numbers and dictionary entries (built in), or a file or data set"""

    source_lang: str = "en"
    """the source language (a num2words code: en, de, fr, es, nl, ...)"""
    target_lang: str = "de"
    """the target language"""
    min_digits: int = 1
    """numbers: the fewest digits in training, val and test"""
    max_digits: int = 6
    """numbers: the most digits in training, val and test"""
    long_digits: list[int] = dataclasses.field(default_factory=lambda: [7, 9])
    """numbers: the fewest and most digits of test_long (longer than training's)"""
    holdout_percent: float = 10.0
    """numbers (and a file's pairs) held out of training by a hash, half val, half test"""
    dictionary: str = "auto"
    """auto: the pair's FreeDict dictionary where installed (/usr/share/dictd) | freedict (an error if not) | none |
    a dictd FILE.index"""
    dict_train: int = 2000
    """dictionary pairs in training"""
    dict_test: int = 500
    """dictionary pairs in test_dict (held out)"""
    dict_percent: float = 10.0
    """share of training samples drawn from the dictionary pairs"""
    dict_holdout_percent: float = 5.0
    """dictionary entries held out of training by a hash (test_dict draws from these)"""
    dict_max_words: int = 3
    """dictionary entries and examples of at most this many words on each side"""
    pairs: Optional[str] = None
    """a TSV (source<TAB>target) or JSON Lines file of pairs, in place of the built-in data"""
    dataset: Optional[str] = None
    """hf:NAME_OR_PATH: a Hugging Face data set with a translation column, in place of the built-in data"""
    split: Optional[str] = None
    """hf: only: the one split to use, split by hash (null: the data set's train/validation/test)"""
    translation_column: str = "translation"
    """hf: the column of {LANG: text} rows"""
    max_rows: Optional[int] = None
    """hf: read at most this many rows of each split (null: all)"""
    vocab_size: int = 1000
    """subword vocabulary of both languages (at least the 256 bytes and 4 special tokens; sentences want 8000 or more)"""
    max_tokens: int = 64
    """longer sources and targets are cut to this many tokens"""
    epoch_size: int = 100000
    """built-in data: training samples per epoch (numbers are drawn: an epoch is a count)"""
    val_size: int = 500
    """numbers in val"""
    test_size: int = 1000
    """numbers in test and in test_long"""


# -- task ---------------------------------------------------------------------------------------------
def source_of(d: dict) -> str:
    """Where a run's pairs come from: "pairs", "dataset" or "builtin"."""
    if d.get("pairs") and d.get("dataset"):
        raise suite.SuiteError("translate: give data.pairs or data.dataset, not both")
    return "pairs" if d.get("pairs") else "dataset" if d.get("dataset") else "builtin"


def check_settings(cfg: dict) -> None:
    """One clear error for settings that cannot make data."""
    d = cfg["data"]
    if source_of(d) == "builtin":
        data.check_language(d["source_lang"], "source_lang")
        data.check_language(d["target_lang"], "target_lang")
        long = d["long_digits"]
        if not (1 <= d["min_digits"] <= d["max_digits"] and len(long) == 2 and d["max_digits"] < long[0] <= long[1]):
            raise suite.SuiteError(f"data.min_digits {d['min_digits']}, max_digits {d['max_digits']}, long_digits {long}: "
                                   f"need 1 <= min_digits <= max_digits < long_digits [FEWEST, MOST]")
    if d["vocab_size"] < 260:
        raise suite.SuiteError(f"data.vocab_size {d['vocab_size']}: at least 260 (the 256 bytes and 4 special tokens)")
    max_len = cfg["backbone"].get("max_len") or d["max_tokens"]
    if not 2 <= d["max_tokens"] <= max_len:
        raise suite.SuiteError(f"data.max_tokens {d['max_tokens']} must be between 2 and the backbone's max_len {max_len}")


def dictionary_of(d: dict):
    """The built-in data's dictionary, (its dictd path, reversed), or None: not wanted or not there."""
    if source_of(d) != "builtin" or not (d["dict_train"] or d["dict_test"]):
        return None
    return data.find_dictionary(d)


def numbers(d: dict, split: str | None, seed: int, digits) -> list[data.Pair]:
    """An evaluation split of numbers (``split`` None: any number, all longer than training's)."""
    pairs = data.number_set(d, split, d["test_size"] if split != "val" else d["val_size"], seed, tuple(digits))
    if not pairs:
        raise suite.SuiteError(f"numbers of {digits[0]} to {digits[1]} digits hold out no {split} numbers; "
                               f"raise data.max_digits or data.holdout_percent")
    return pairs


@functools.lru_cache(maxsize=2)
def _pairs(key: str) -> dict[str, list[data.Pair]]:
    d = json.loads(key)
    kind = source_of(d)
    if kind == "pairs":
        return data.complete({"all": data.read_pairs(d["pairs"], d)}, d["holdout_percent"])
    if kind == "dataset":
        return data.complete(data.hf_pairs(d), d["holdout_percent"])
    found = dictionary_of(d)
    if not found:
        return {}
    return data.dictionary_splits(data.dictionary_pairs(*found, d["dict_max_words"]), d)


def pairs_of(d: dict) -> dict[str, list[data.Pair]]:
    """The run's read pairs by split (a file's or data set's train / val / test, or the dictionary's
    train / test_dict), read once per process."""
    return _pairs(json.dumps(d, sort_keys=True, default=str))


class Translate(suite.Seq2SeqTask):
    name = "translate"
    domain = "text"
    description = "translation (en->de by default): numbers in words and FreeDict entries, or your pairs (TSV, JSONL, hf:)"
    tokenizer_class = BPETokenizer
    settings = {"data": TranslateData, "model": suite.Seq2SeqSettings}
    text_metrics = ("bleu", "chrf")

    def prepare_data(self, cfg):
        check_settings(cfg)
        found = dictionary_of(cfg["data"])
        if found:
            data.dictionary_pairs(*found, cfg["data"]["dict_max_words"])  # parsed once into the cache

    def build_tokenizer(self, cfg):
        check_settings(cfg)
        d = cfg["data"]
        train = pairs_of(d).get("train", [])[:TOKENIZER_PAIRS]
        if source_of(d) == "builtin":
            train = train + data.train_numbers(d, TOKENIZER_NUMBERS, int(cfg["seed"]))
        return BPETokenizer.train((t for p in train for t in (p.source, p.target)), int(d["vocab_size"]))

    def build_data(self, tokenizer, cfg):
        check_settings(cfg)
        d, seed = cfg["data"], int(cfg["seed"])
        found = pairs_of(d)
        if source_of(d) != "builtin":
            empty = [split for split in ("train", "val", "test") if not found.get(split)]
            if empty:
                raise suite.SuiteError(f"{d['pairs'] or d['dataset']}: too few pairs for a {empty[0]} split "
                                       f"({sum(map(len, found.values()))} pairs; data.holdout_percent {d['holdout_percent']})")
            return {split: data.PairSet(tokenizer, pairs, d["max_tokens"], f"{split} split") for split, pairs in found.items()}
        train = (d["min_digits"], d["max_digits"])
        splits = {
            "train": data.TrainStream(tokenizer, d, seed, found.get("train", [])),
            "val": numbers(d, "val", 1, train),
            "test": numbers(d, "test", 2, train),
            "test_long": numbers(d, None, 3, d["long_digits"]),
        }
        if found.get("test_dict"):
            splits["test_dict"] = found["test_dict"]
        return {s: v if s == "train" else data.PairSet(tokenizer, v, d["max_tokens"], f"{s} split") for s, v in splits.items()}

    def build_eval_data(self, tokenizer, cfg):
        d = cfg["data"]
        if source_of(d) == "pairs":
            return {"test": data.PairSet(tokenizer, data.read_pairs(d["pairs"], d), d["max_tokens"], d["pairs"])}
        return super().build_eval_data(tokenizer, cfg)

    def source_sample(self, tokenizer, raw):
        raw = data.text(raw)
        if not raw:
            raise suite.SuiteError("translate: nothing to translate (the input is empty)")
        return tokenizer.encode_source(raw)
