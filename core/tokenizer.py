"""The tokenizer contract: deterministic, and saved as JSON in every run directory."""
from __future__ import annotations

import dataclasses
from typing import Any


class Tokenizer:
    """Raw samples -> token ids or patch vectors.

    Subclasses are dataclasses whose fields are JSON values (lists, numbers, strings); that state
    is written to ``tokenizer.json`` and ``from_state`` rebuilds the same tokenizer from it, so a
    run directory is usable without its original data. Override both for anything else.
    """

    def state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Tokenizer":
        return cls(**state)


@dataclasses.dataclass
class CharTokenizer(Tokenizer):
    """One id per character of a fixed alphabet, after the special tokens PAD=0, BOS=1, EOS=2."""

    alphabet: str

    PAD, BOS, EOS = 0, 1, 2
    SPECIALS = 3

    @property
    def vocab_size(self) -> int:
        return self.SPECIALS + len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        index = {c: i + self.SPECIALS for i, c in enumerate(self.alphabet)}
        try:
            return [index[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the alphabet {self.alphabet!r}") from None

    def decode(self, ids) -> str:
        return "".join(self.alphabet[i - self.SPECIALS] for i in ids if i >= self.SPECIALS)
