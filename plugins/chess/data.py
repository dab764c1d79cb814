"""Labelled positions as datasets: tokens, the move to learn, the game's outcome, the legal moves.

Every source (PGN games, Stockfish self-play, mate-in-one puzzles) yields ``Positions``: FENs with
a move in UCI, the outcome from the side to move's point of view and the game each came from.
Splits are made by game (a hash of the game's key), never by position, so no game leaks from
training into validation or test.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import chess
import numpy as np
import torch
from torch.utils.data import Dataset

import suite

from .tokenizer import ChessTokenizer

VALUE_CLASSES = ["loss", "draw", "win"]  # from the side to move's point of view
UNKNOWN = -1


def value_class(white_score: int | None, turn: bool) -> int:
    """Game result from White's side (1, 0, -1; None if unknown) -> value class for the side to move."""
    if white_score is None:
        return UNKNOWN
    return 1 + (white_score if turn == chess.WHITE else -white_score)


@dataclass
class Positions:
    fen: list[str] = field(default_factory=list)
    move: list[str] = field(default_factory=list)  # UCI, in the board's own orientation
    value: list[int] = field(default_factory=list)  # VALUE_CLASSES index, or UNKNOWN
    game: list[str] = field(default_factory=list)  # the key that decides the split
    correct: list[list[str]] | None = None  # every right move, where there are several
    soft: list[dict[str, float]] | None = None  # a target distribution over moves (UCI -> probability)

    def __len__(self) -> int:
        return len(self.fen)

    def extend(self, other: "Positions") -> None:
        if self.soft is not None or other.soft is not None:
            self.soft = self.soft_targets() + other.soft_targets()
        if self.correct is not None or other.correct is not None:
            self.correct = self.right_moves() + other.right_moves()
        self.fen += other.fen
        self.move += other.move
        self.value += other.value
        self.game += other.game

    def right_moves(self) -> list[list[str]]:
        """Every right move of every position: ``correct`` where given, else the one labelled move."""
        return list(self.correct) if self.correct is not None else [[m] for m in self.move]

    def soft_targets(self) -> list[dict[str, float]]:
        """Every position's target distribution: ``soft`` where given, else uniform over its right moves."""
        if self.soft is not None:
            return list(self.soft)
        return [{m: 1.0 / len(ms) for m in ms} for ms in self.right_moves()]

    def select(self, keep) -> "Positions":
        pick = lambda xs: [xs[i] for i in keep] if xs is not None else None  # noqa: E731
        return Positions(pick(self.fen), pick(self.move), pick(self.value), pick(self.game), pick(self.correct), pick(self.soft))


def split_by_game(p: Positions, val_percent: float, test_percent: float, fill: bool = False) -> dict[str, Positions]:
    """Train / val / test by a hash of each position's game. With ``fill``, a split that the hash
    left empty takes a game from train when there are at least three games, so a small PGN file
    still gets one game in val and one in test (the last games seen, a stable choice)."""
    memo: dict[str, str] = {}
    for g in p.game:
        if g not in memo:
            memo[g] = suite.hash_split(g, val_percent, test_percent)
    if fill and len(memo) >= 3:
        for s in ("val", "test"):
            if s not in memo.values():
                train = [g for g, t in memo.items() if t == "train"]
                if len(train) > 1:
                    memo[train[-1]] = s
    members: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, g in enumerate(p.game):
        members[memo[g]].append(i)
    return {s: p.select(idx) for s, idx in members.items()}


def game_count(p: Positions) -> int:
    return len(set(p.game))


class _Ragged:
    """Lists of move ids stored flat: row i is ``flat[offsets[i]:offsets[i + 1]]``."""

    def __init__(self, rows: list[list[int]]):
        self.offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=self.offsets[1:])
        self.flat = torch.tensor([x for r in rows for x in r], dtype=torch.long)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def __add__(self, other: "_Ragged") -> "_Ragged":
        joined = _Ragged([])
        joined.offsets = np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]])
        joined.flat = torch.cat([self.flat, other.flat])
        return joined


class PositionSet(Dataset):
    """Tokenised positions of one split. ``target`` is "move" (the policy) or "value" (W/D/L).

    Samples are (tokens, label, legal move ids or None, right move ids or None, (move ids,
    probabilities) of the soft target or None).
    """

    def __init__(self, tokenizer: ChessTokenizer, p: Positions, target: str = "move", legal: bool = False):
        if target == "value":
            p = p.select([i for i, v in enumerate(p.value) if v != UNKNOWN])
        self.size = len(p)
        self.tokens = torch.from_numpy(np.stack([tokenizer.encode(f) for f in p.fen])) if len(p) else torch.zeros(0, 72, dtype=torch.int16)
        if target == "value":
            self.labels = torch.tensor(p.value, dtype=torch.long)
        else:
            self.labels = torch.tensor([tokenizer.move_id(m, tokenizer.flips(f)) for f, m in zip(p.fen, p.move)], dtype=torch.long)
        self.legal = _Ragged([tokenizer.legal_ids(chess.Board(f)) for f in p.fen]) if legal else None
        self.correct = None
        if p.correct is not None:
            self.correct = _Ragged([[tokenizer.move_id(m, tokenizer.flips(f)) for m in ms] for f, ms in zip(p.fen, p.correct)])
        self.soft = self.soft_p = None
        if p.soft is not None and target == "move":
            self.soft = _Ragged([[tokenizer.move_id(m, tokenizer.flips(f)) for m in d] for f, d in zip(p.fen, p.soft)])
            self.soft_p = torch.tensor([q for d in p.soft for q in d.values()], dtype=torch.float32)

    def __len__(self) -> int:
        return self.size

    def extended(self, tokenizer: ChessTokenizer, p: Positions) -> "PositionSet":
        """A new set: these samples, then ``p``'s, given the same fields (legal moves, every right
        move, soft targets) as this set has. This set is left as it is (runs may share it)."""
        p = Positions(p.fen, p.move, p.value, p.game, p.right_moves() if self.correct is not None else None,
                      p.soft_targets() if self.soft is not None else None)
        more = PositionSet(tokenizer, p, legal=self.legal is not None)
        joined = PositionSet.__new__(PositionSet)
        joined.size = self.size + more.size
        joined.tokens = torch.cat([self.tokens, more.tokens])
        joined.labels = torch.cat([self.labels, more.labels])
        for name in ("legal", "correct", "soft"):  # _Ragged rows, or None
            a, b = getattr(self, name), getattr(more, name)
            setattr(joined, name, a + b if a is not None else None)
        joined.soft_p = torch.cat([self.soft_p, more.soft_p]) if self.soft_p is not None else None
        return joined

    def __getitem__(self, i):
        soft = None
        if self.soft is not None:
            soft = (self.soft[i], self.soft_p[self.soft.offsets[i]:self.soft.offsets[i + 1]])
        return (self.tokens[i], self.labels[i], self.legal[i] if self.legal is not None else None,
                self.correct[i] if self.correct is not None else None, soft)


def _mask(rows: list[torch.Tensor], n: int) -> torch.Tensor:
    mask = torch.zeros(len(rows), n, dtype=torch.bool)
    lengths = torch.tensor([len(r) for r in rows])
    mask[torch.repeat_interleave(torch.arange(len(rows)), lengths), torch.cat(rows)] = True
    return mask


def collate(samples: list) -> dict[str, torch.Tensor]:
    tokens, labels, legal, correct, soft = zip(*samples)
    batch = {"inputs": torch.stack(tokens).long(), "label": torch.stack(labels)}
    if legal[0] is not None:
        batch["legal"] = _mask(list(legal), ChessTokenizer.n_moves)
    if correct[0] is not None:
        batch["correct"] = _mask(list(correct), ChessTokenizer.n_moves)
    if soft[0] is not None:
        dense = torch.zeros(len(soft), ChessTokenizer.n_moves)
        rows = torch.repeat_interleave(torch.arange(len(soft)), torch.tensor([len(ids) for ids, _ in soft]))
        dense[rows, torch.cat([ids for ids, _ in soft])] = torch.cat([q for _, q in soft])
        batch["soft"] = dense
    return batch
