"""Chess evaluation without a trained run: the Elo fit (scipy), Lichess-format puzzle files and
their scoring, varied openings (random plies, a polyglot book) and sampled moves."""
from __future__ import annotations

import gzip
import random
import struct

import chess
import chess.polyglot
import pytest
import torch

import suite
from suite.plugins.chess.elo import fit_elo
from suite.plugins.chess.policy import best_move, random_opening
from suite.plugins.chess.puzzles import read_puzzles, solve
from suite.plugins.chess.tokenizer import MOVES, ChessTokenizer


# -- the Elo fit -------------------------------------------------------------------------------
def games(a: str, b: str, wins: int, draws: int, losses: int) -> list[tuple[str, str, float]]:
    return [(a, b, 1.0)] * wins + [(a, b, 0.5)] * draws + [(a, b, 0.0)] * losses


def test_elo_fit_is_the_maximum_likelihood_rating_with_a_profile_interval():
    even = fit_elo(games("m", "sf1500", 10, 0, 10), {"sf1500": 1500.0}, "m")
    assert even["elo"] == pytest.approx(1500, abs=1)
    lo, hi = even["ci95"]
    assert lo < 1500 < hi and (1500 - lo) == pytest.approx(hi - 1500, abs=2)
    more = fit_elo(games("m", "sf1500", 40, 0, 40), {"sf1500": 1500.0}, "m")
    assert more["ci95"][1] - more["ci95"][0] < (hi - lo) * 0.6  # four times the games: about half the width
    # 75% against one anchor is +191 Elo; two anchors pull the estimate between them.
    assert fit_elo(games("m", "a", 15, 0, 5), {"a": 1400.0}, "m")["elo"] == pytest.approx(1400 + 190.8, abs=1)
    two = fit_elo(games("m", "a", 15, 0, 5) + games("m", "b", 5, 0, 15), {"a": 1400.0, "b": 1800.0}, "m")
    assert 1400 < two["elo"] < 1800 and two["elo"] == pytest.approx(1600, abs=1)


def test_elo_fit_after_only_losses_gives_an_upper_bound_and_rates_an_unanchored_level():
    lost = fit_elo(games("m", "sf1350", 0, 0, 10), {"sf1350": 1350.0}, "m")
    assert lost["ci95"][0] is None and lost["ci95"][1] < 1350
    # A node-limited level with no rating of its own is rated by its games against an anchor.
    ladder = games("m", "nodes", 10, 0, 10) + games("nodes", "sf1350", 5, 0, 15) + games("m", "sf1350", 0, 0, 10)
    fit = fit_elo(ladder, {"sf1350": 1350.0}, "m")
    assert fit["ratings"]["nodes"] < 1350 and fit["elo"] < 1350
    assert fit["ci95"][0] is not None and fit["ci95"][0] < fit["elo"] < fit["ci95"][1]
    with pytest.raises(suite.SuiteError, match="no games"):
        fit_elo(games("x", "sf1350", 1, 0, 0), {"sf1350": 1350.0}, "m")


# -- puzzles -----------------------------------------------------------------------------------
HEADER = "PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,NbPlays,Themes,GameUrl,OpeningTags\n"
TWO_MATES = "6k1/2p2ppp/8/8/8/8/1Q6/R5K1 b - - 0 1"  # after ...c6, both Ra8# and Qb8# mate
ROWS = [
    f"m1,{TWO_MATES},c7c6 a1a8,1100,75,95,100,mate mateIn1,https://lichess.org/x,",
    f"op,{chess.STARTING_FEN},e2e4 e7e5 g1f3 b8c6,1700,80,90,100,opening,https://lichess.org/y,",
    "bad-fen,rnbqkbnr/pppppppp/9/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1,e2e4 e7e5,1500,1,1,1,x,u,",
    f"illegal,{chess.STARTING_FEN},e2e5 e7e5,1500,1,1,1,x,u,",
    f"rating,{chess.STARTING_FEN},e2e4 e7e5,high,1,1,1,x,u,",
    "short,only two",
]


class Oracle(torch.nn.Module):
    """A stand-in policy that plays a fixed move in each known position (else the first legal one)."""

    tokenizer, device = ChessTokenizer(), torch.device("cpu")

    def __init__(self, answers: dict[str, str]):
        super().__init__()
        self.answers = {}
        for fen, uci in answers.items():
            board = chess.Board(fen)
            self.answers[self.tokenizer.encode(board).tobytes()] = self.tokenizer.move_id(uci, self.tokenizer.flips(board))

    def forward(self, batch):
        logits = torch.zeros(len(batch["inputs"]), len(MOVES))
        for row, tokens in zip(logits, batch["inputs"]):
            key = tokens.to(torch.int16).numpy().tobytes()
            if key in self.answers:
                row[self.answers[key]] = 10.0
        return logits


def after(fen: str, *ucis: str) -> str:
    board = chess.Board(fen)
    for u in ucis:
        board.push_uci(u)
    return board.fen()


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".csv.zst"])
def test_puzzle_files_in_the_lichess_format_are_read_and_malformed_rows_counted(tmp_path, suffix):
    text = (HEADER + "\n".join(ROWS) + "\n").encode()
    path = tmp_path / f"puzzles{suffix}"
    if suffix == ".csv.gz":
        text = gzip.compress(text)
    elif suffix == ".csv.zst":
        text = pytest.importorskip("zstandard").ZstdCompressor().compress(text)
    path.write_bytes(text)
    data = read_puzzles(path)
    assert [p.id for p in data.puzzles] == ["m1", "op"] and data.rows == 6
    assert len(data.malformed) == 4
    assert data.malformed[0].startswith("line 4: bad FEN") and "illegal move e2e5" in data.malformed[1]
    assert "rating 'high'" in data.malformed[2] and data.malformed[3].startswith("line 7: 2 columns")
    first = data.puzzles[0]
    assert first.board.fen() == after(TWO_MATES, "c7c6") and [m.uci() for m in first.solution] == ["a1a8"]
    assert first.rating == 1100
    assert [p.id for p in read_puzzles(path, min_rating=1500).puzzles] == ["op"]
    assert len(read_puzzles(path, limit=1).puzzles) == 1


def test_a_puzzle_file_without_header_and_one_with_a_bad_header(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(ROWS[:2]) + "\n")
    assert len(read_puzzles(plain).puzzles) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("PuzzleId,Position,Moves,Rating\n" + ROWS[0] + "\n")
    with pytest.raises(suite.SuiteError, match="bad.csv: line 1: the header lacks the column.s. FEN"):
        read_puzzles(bad)


def test_a_puzzle_is_solved_by_every_listed_move_or_by_any_mate(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(HEADER + "\n".join(ROWS[:2]) + "\n")
    mate, opening = read_puzzles(path).puzzles
    listed = {after(TWO_MATES, "c7c6"): "a1a8", after(chess.STARTING_FEN, "e2e4"): "e7e5",
              after(chess.STARTING_FEN, "e2e4", "e7e5", "g1f3"): "b8c6"}
    assert solve(Oracle(listed), [mate, opening]) == [True, True]
    other_mate = {**listed, after(TWO_MATES, "c7c6"): "b2b8"}  # Qb8# is not listed but mates: it counts
    assert solve(Oracle(other_mate), [mate, opening]) == [True, True]
    wrong_second = {**listed, after(chess.STARTING_FEN, "e2e4", "e7e5", "g1f3"): "g8f6"}
    assert solve(Oracle(wrong_second), [mate, opening]) == [True, False]
    not_mate = {**listed, after(TWO_MATES, "c7c6"): "b2b7"}
    assert solve(Oracle(not_mate), [mate, opening]) == [False, True]


# -- openings and sampling ---------------------------------------------------------------------
def polyglot_book(path, entries: list[tuple[chess.Board, str, int]]) -> None:
    rows = []
    for board, uci, weight in entries:
        move = chess.Move.from_uci(uci)
        raw = move.to_square | (move.from_square << 6)
        rows.append((chess.polyglot.zobrist_hash(board), raw, weight))
    path.write_bytes(b"".join(struct.pack(">QHHI", key, raw, weight, 0) for key, raw, weight in sorted(rows)))


def test_openings_are_random_legal_plies_or_drawn_from_a_polyglot_book(tmp_path):
    openings = {tuple(m.uci() for m in random_opening(random.Random(i), 4)) for i in range(30)}
    assert len(openings) == 30 and all(len(o) == 4 for o in openings)
    assert random_opening(random.Random(1), 4) == random_opening(random.Random(1), 4)
    book = tmp_path / "book.bin"
    start = chess.Board()
    after_e4 = chess.Board()
    after_e4.push_uci("e2e4")
    polyglot_book(book, [(start, "e2e4", 1), (after_e4, "c7c5", 3), (after_e4, "e7e5", 1)])
    lines = [[m.uci() for m in random_opening(random.Random(i), 6, str(book))] for i in range(40)]
    assert all(line[0] == "e2e4" and len(line) == 2 for line in lines)  # the book ends after two plies
    assert {line[1] for line in lines} == {"c7c5", "e7e5"}
    assert sum(line[1] == "c7c5" for line in lines) > 20  # weighted 3:1
    with pytest.raises(suite.SuiteError, match="polyglot"):
        (tmp_path / "broken.bin").write_bytes(b"\x00" * 7)
        random_opening(random.Random(0), 4, str(tmp_path / "broken.bin"))


def test_temperature_samples_moves_and_zero_keeps_the_best():
    board = chess.Board()
    model = Oracle({chess.STARTING_FEN: "e2e4"})
    rng = random.Random(0)
    assert {best_move(model, board, rules=False).uci() for _ in range(5)} == {"e2e4"}
    hot = [best_move(model, board, rules=False, temperature=50.0, rng=rng).uci() for _ in range(40)]
    assert len(set(hot)) > 5  # at a high temperature the policy's favourite is one move among many
    cool = [best_move(model, board, rules=False, temperature=0.5, rng=rng).uci() for _ in range(20)]
    assert cool.count("e2e4") == 20
