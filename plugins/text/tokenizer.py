"""Text tokenizers: raw bytes by default, a pretrained WordPiece/BPE vocabulary when imported weights bring one.

Both encode text to ids plus, for every id, how many bytes of the UTF-8 text it stands for; the
language model's bits per byte is computed from those counts, so it is comparable across tokenizers.

Text is held as ``str`` decoded with ``surrogateescape``: bytes that are not UTF-8 survive as lone
surrogates, the byte tokenizer turns them back into the exact original bytes, and a subword
tokenizer sees U+FFFD in their place. Non-UTF-8 input is never fatal.

Which of the two a run uses (``data.tokenizer``: auto, bytes, source) is decided at the end of
this file: ``byte_tokenizer`` without a weight source, ``source_tokenizer`` with one.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import suite

SURROGATE_FREE = {c: "\ufffd" for c in range(0xDC80, 0xDD00)}


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def n_bytes(text: str) -> int:
    return len(to_bytes(text))


@dataclasses.dataclass
class ByteTokenizer(suite.Tokenizer):
    """One id per byte (256 of them) after the special tokens PAD=0, BOS=1, EOS=2."""

    kind: str = "bytes"
    classes: list = dataclasses.field(default_factory=list)  # label names, for text-classify

    PAD, BOS, EOS = 0, 1, 2
    SPECIALS = 3

    @property
    def vocab_size(self) -> int:
        return self.SPECIALS + 256

    def encode(self, text: str) -> list[int]:
        return [b + self.SPECIALS for b in to_bytes(text)]

    def encode_with_bytes(self, text: str) -> tuple[list[int], list[int]]:
        ids = self.encode(text)
        return ids, [1] * len(ids)

    def decode(self, ids) -> str:
        return bytes(i - self.SPECIALS for i in ids if self.SPECIALS <= i < self.SPECIALS + 256).decode("utf-8", "replace")


@dataclasses.dataclass
class PretrainedTokenizer(suite.Tokenizer):
    """A vocabulary that came with imported weights, run by the ``tokenizers`` library.

    ``spec`` is the ``tokenizers`` JSON serialisation (so a run directory is self-contained);
    BOS/EOS are [CLS]/[SEP] for the BERT family; for the GPT-2, Llama and GPT-NeoX families the
    document separator <|endoftext|> (else <s>/</s>, <|begin_of_text|>/<|end_of_text|>, else the
    ids config.json names).
    """

    spec: str
    family: str
    PAD: int = 0
    BOS: int = 0
    EOS: int = 0
    size: int = 0  # rows of the imported embedding table, when it is larger than the vocabulary
    kind: str = "tokenizers"
    classes: list = dataclasses.field(default_factory=list)  # label names, for text-classify

    def __post_init__(self):
        self._tok = None

    @property
    def tok(self):
        if self._tok is None:
            from tokenizers import Tokenizer as HFTokenizer

            self._tok = HFTokenizer.from_str(self.spec)
            self._tok.no_padding()
            self._tok.no_truncation()
        return self._tok

    def state(self):
        return {k: getattr(self, k) for k in ("spec", "family", "PAD", "BOS", "EOS", "size", "kind", "classes")}

    def __getstate__(self):  # picklable: the Rust tokenizer is rebuilt from spec
        return self.state()

    def __setstate__(self, state):
        self.__init__(**state)

    @property
    def vocab_size(self) -> int:
        return max(self.size, self.tok.get_vocab_size(with_added_tokens=True))

    def encode_with_bytes(self, text: str) -> tuple[list[int], list[int]]:
        text = text.translate(SURROGATE_FREE)
        enc = self.tok.encode(text, add_special_tokens=False)
        costs, prev = [], 0
        for start, end in enc.offsets:  # character offsets into text
            end = max(end, prev)
            costs.append(len(text[prev:end].encode("utf-8")))
            prev = end
        if costs:
            costs[-1] += len(text[prev:].encode("utf-8"))  # trailing whitespace goes with the last token
        return list(enc.ids), costs

    def encode(self, text: str) -> list[int]:
        return self.encode_with_bytes(text)[0]

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)


def from_vocabulary(vocab: dict) -> PretrainedTokenizer:
    """Build the tokenizer that a weight source's ``Pretrained.tokenizer`` describes."""
    try:
        import tokenizers
    except ImportError:
        raise suite.SuiteError("a pretrained vocabulary needs the tokenizers package: pip install 'suite[pretrained]'") from None
    path = Path(vocab["dir"]) / vocab["file"]
    try:
        if vocab["file"] == "tokenizer.json":
            tok = tokenizers.Tokenizer.from_file(str(path))
        elif vocab["file"] == "vocab.txt":
            tok = tokenizers.BertWordPieceTokenizer(str(path), lowercase=vocab.get("lowercase", False))._tokenizer
        else:
            tok = tokenizers.ByteLevelBPETokenizer(str(path), str(path.parent / "merges.txt"))._tokenizer
    except Exception as e:  # the tokenizers library raises plain Exceptions
        raise suite.SuiteError(f"{path}: cannot read the vocabulary: {str(e).splitlines()[0]}") from None
    tok.no_padding()
    tok.no_truncation()

    def special(*names):
        for n in names:
            i = tok.token_to_id(n)
            if i is not None:
                return i
        return None

    if vocab["family"] == "bert":
        bos, eos = special("[CLS]", "<s>"), special("[SEP]", "</s>")
        pad = special("[PAD]", "<pad>")
    else:  # GPT-2, Llama and GPT-NeoX families: the document separator, else the ids config.json names
        in_vocab = lambda i: i if isinstance(i, int) and 0 <= i < tok.get_vocab_size() else None  # noqa: E731
        bos = special("<|endoftext|>", "<s>", "<|begin_of_text|>")
        eos = special("<|endoftext|>", "</s>", "<|end_of_text|>")
        bos = bos if bos is not None else in_vocab(vocab.get("bos_id"))
        eos = eos if eos is not None else in_vocab(vocab.get("eos_id"))
        bos = eos if bos is None else bos
        pad = eos
    if bos is None or eos is None:
        raise suite.SuiteError(f"{path}: the vocabulary has no start/end tokens ([CLS]/[SEP], <s>/</s> or <|endoftext|>)")
    return PretrainedTokenizer(spec=tok.to_str(), family=vocab["family"], PAD=pad if pad is not None else eos, BOS=bos, EOS=eos)


def load_tokenizer(state: dict) -> suite.Tokenizer:
    """A run's saved tokenizer; ValueError when the state does not rebuild one (a damaged file, another version's)."""
    if state.get("kind") == "tokenizers":
        tokenizer = PretrainedTokenizer(**state)
        try:
            tokenizer.tok  # the saved vocabulary parsed now, not at the first sample
        except Exception as e:  # the tokenizers library raises plain Exceptions
            raise ValueError(f"its vocabulary (spec) does not load: {str(e).splitlines()[0]}") from None
        return tokenizer
    return ByteTokenizer(**state)


# -- which tokenizer a run uses (data.tokenizer) ----------------------------------------------------
TOKENIZER_CHOICES = ("auto", "bytes", "source")


def tokenizer_choice(cfg: dict) -> str:
    choice = cfg["data"].get("tokenizer", "auto")
    if choice not in TOKENIZER_CHOICES:
        raise suite.SuiteError(f"data.tokenizer must be one of {', '.join(TOKENIZER_CHOICES)}, not {choice!r}")
    return choice


def byte_tokenizer(cfg: dict, classes=()) -> ByteTokenizer:
    """The default tokenizer: raw bytes (without --init-from a source, or with data.tokenizer bytes)."""
    if tokenizer_choice(cfg) == "source":
        raise suite.SuiteError("data.tokenizer source needs --init-from a weight source that has a vocabulary (hf:PATH, minilm)")
    return ByteTokenizer(classes=list(classes))


def source_tokenizer(pretrained: suite.Pretrained, cfg: dict):
    """The source's vocabulary, if the run wants it (data.tokenizer auto/source) and the source has one."""
    choice = tokenizer_choice(cfg)
    if choice == "bytes":
        return None
    if pretrained.tokenizer is None or pretrained.tokenizer.get("family") not in ("bert", "gpt2", "llama", "gpt_neox"):
        if choice == "source":
            raise suite.SuiteError(f"--init-from {cfg['init']['from']}: the weight source has no vocabulary (data.tokenizer source)")
        return None
    tok = from_vocabulary(pretrained.tokenizer)
    words = pretrained.state_dict.get("adapter.embed.weight")
    if words is not None:
        tok.size = int(words.shape[0])
    return tok
