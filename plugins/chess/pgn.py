"""Positions from PGN files, streamed game by game (plain, .gz, .bz2 or .zst; files or globs).

Every position of every game's main line becomes (position, move played, game result). Games
whose headers carry ratings below ``min_elo`` are filtered; games of other variants (a ``Variant``
header python-chess names as another variant, or Chess960 castling rights in the ``FEN``) are
skipped and counted by variant; games python-chess cannot parse (illegal or unreadable moves, bad
FEN headers) are skipped and counted as malformed. None of them is fatal.

Chess960 games are skipped, not read with Chess960 rules: the move vocabulary has their castling
moves (king takes rook, e.g. b1a1), but the position tokens' four castling rights do not say which
rook may castle, the training data rebuilds each position with standard rules (so a Chess960
castling move is not among its legal moves), and castling from the standard array is e1h1 there
but e1g1 in a standard game: the same position would teach two moves.
"""
from __future__ import annotations

import bz2
import glob
import gzip
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import chess
import chess.pgn
import chess.variant

import suite

from .data import Positions, value_class

RESULTS = {"1-0": 1, "0-1": -1, "1/2-1/2": 0}


def expand(spec) -> list[Path]:
    """``--data.pgn`` (a path, a glob, or a list of them) -> the files, in a stable order."""
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    paths: list[Path] = []
    for s in specs:
        s = str(Path(str(s)).expanduser())
        found = sorted(glob.glob(s)) if glob.has_magic(s) else ([s] if Path(s).exists() else [])
        if not found:
            raise suite.SuiteError(f"--data.pgn {s}: no such file")
        paths += [Path(p) for p in found if Path(p).is_file()]
    return paths


def open_text(path: Path):
    """A text stream over a PGN file, decompressing on the fly by suffix."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if name.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8", errors="replace")
    if name.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise suite.SuiteError(f"{path}: reading .zst needs the zstandard package (pip install zstandard)") from None
        raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


@dataclass
class PgnCounts:
    games: int = 0  # games used
    malformed: int = 0
    variants: Counter = field(default_factory=Counter)  # games of other variants, by variant name
    filtered: int = 0  # below min_elo
    empty: int = 0  # no moves
    positions: int = 0

    def summary(self, files: int) -> str:
        variants = ""
        if self.variants:
            games = "games" if sum(self.variants.values()) > 1 else "game"
            variants = ", ".join(f"{n} {name}" for name, n in self.variants.most_common()) + f" {games}; "
        return (f"pgn: {self.games} games, {self.positions} positions from {files} file(s); skipped {variants}"
                f"{self.malformed} malformed, {self.filtered} below min_elo, {self.empty} without moves")


def _rating(headers, key: str) -> int | None:
    try:
        return int(headers.get(key, ""))
    except ValueError:
        return None


def read_pgn(spec, *, min_elo: int = 0, max_positions: int | None = None) -> tuple[Positions, PgnCounts, int]:
    """Read games until the files end or ``max_positions`` is reached."""
    paths = expand(spec)
    counts, out = PgnCounts(), Positions()
    logging.getLogger("chess.pgn").setLevel(logging.CRITICAL)  # errors are counted, not logged
    for path in paths:
        try:
            with open_text(path) as stream:
                index = 0
                while max_positions is None or len(out) < max_positions:
                    try:
                        game = chess.pgn.read_game(stream)
                    except (ValueError, UnicodeDecodeError):  # a header python-chess cannot turn into a game
                        counts.malformed += 1
                        index += 1
                        continue
                    if game is None:
                        break
                    index += 1
                    _add_game(game, f"{path.name}#{index}", min_elo, counts, out)
        except (OSError, EOFError) as e:  # unreadable or truncated compressed file
            raise suite.SuiteError(f"{path}: cannot read PGN: {e}") from None
    if max_positions is not None and len(out) > max_positions:
        out = out.select(range(max_positions))
    counts.positions = len(out)
    return out, counts, len(paths)


def variant(headers) -> str | None:
    """The variant a game's ``Variant`` header names, as python-chess names it (``crazyhouse``,
    ``antichess``, ``Chess960``, ...); None for standard chess (no header, Standard, From Position)."""
    if headers.is_chess960():
        return "Chess960"
    name = headers.get("Variant", "Standard")
    try:
        board = chess.variant.find_variant(name)
    except ValueError:  # a variant python-chess does not know: named as the header writes it
        return name.strip() or None
    return None if board is chess.Board else board.uci_variant


def _add_game(game, key: str, min_elo: int, counts: PgnCounts, out: Positions) -> None:
    other = variant(game.headers)
    if other:
        counts.variants[other] += 1
        return
    if game.errors:
        counts.malformed += 1
        return
    try:
        board = game.board()
    except ValueError:
        counts.malformed += 1
        return
    if board.chess960:  # a FEN whose castling rights only Chess960 has
        counts.variants["Chess960"] += 1
        return
    if not board.is_valid():  # a FEN that is no legal position of standard chess
        counts.malformed += 1
        return
    ratings = [r for r in (_rating(game.headers, "WhiteElo"), _rating(game.headers, "BlackElo")) if r is not None]
    if min_elo and ratings and min(ratings) < min_elo:
        counts.filtered += 1
        return
    score = RESULTS.get(game.headers.get("Result", "*"))
    fens, moves, values = [], [], []
    for move in game.mainline_moves():
        if not board.is_legal(move):  # defensive: python-chess records these as errors already
            counts.malformed += 1
            return
        fens.append(board.fen())
        moves.append(move.uci())
        values.append(value_class(score, board.turn))
        board.push(move)
    if not fens:
        counts.empty += 1
        return
    counts.games += 1
    out.fen += fens
    out.move += moves
    out.value += values
    out.game += [key] * len(fens)
