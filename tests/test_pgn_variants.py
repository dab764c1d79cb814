"""PGN files mixing variants: games of other variants (Chess960, crazyhouse, antichess, ...) are
counted by variant and skipped, malformed games are counted apart, and the standard games
(no Variant header, "Standard", or "From Position" with a legal FEN) are the ones read."""
from __future__ import annotations

import io

import chess
import chess.pgn
import pytest

import suite
from suite.plugins.chess import ChessTask
from suite.plugins.chess.pgn import read_pgn, variant

CHESS960_START = "bqnnrkrb/pppppppp/8/8/8/8/PPPPPPPP/BQNNRKRB w KQkq - 0 1"  # Chess960 position 3
# One game a block, in file order; the standard games are games 1, 4 and 8.
GAMES = [
    """[Event "Rated Blitz game"]
[White "a"]
[Black "b"]
[Result "1-0"]
[WhiteElo "1900"]
[BlackElo "1850"]

1. e4 e5 2. Nf3 Nc6 3. Bc4 Bc5 4. O-O Nf6 5. d3 O-O 1-0""",
    f"""[Event "cutechess Chess960"]
[Result "1/2-1/2"]
[Variant "Chess960"]
[FEN "{CHESS960_START}"]
[SetUp "1"]

1. e4 e5 2. O-O O-O 3. d4 d6 1/2-1/2""",
    """[Event "Rated Crazyhouse game"]
[Variant "Crazyhouse"]
[Result "0-1"]

1. e4 Nf6 2. Nc3 Nxe4 3. Nxe4 d5 4. N@f3 dxe4 0-1""",
    """[Event "Standard header"]
[Variant "Standard"]
[Result "1/2-1/2"]

1. d4 d5 2. c4 e6 3. Nc3 Nf6 1/2-1/2""",
    """[Event "Rated Antichess game"]
[Variant "Antichess"]
[Result "1-0"]

1. e3 b5 2. Bxb5 Nc6 3. Bxc6 dxc6 1-0""",
    """[Event "broken"]
[Result "0-1"]

1. e4 e5 2. Ke3 Nc6 0-1""",
    """[Event "cutechess fischerandom"]
[Result "*"]
[Variant "fischerandom"]
[FEN "qbbnrnkr/pppppppp/8/8/8/8/PPPPPPPP/QBBNRNKR w KQkq - 0 1"]
[SetUp "1"]

1. d4 d5 2. Nde3 Nde6 *""",
    """[Event "From Position"]
[Variant "From Position"]
[FEN "r3k2r/ppp2ppp/8/8/8/8/PPP2PPP/R3K2R w KQkq - 0 1"]
[SetUp "1"]
[Result "*"]

1. O-O-O O-O 2. Rd7 Rfd8 *""",
    f"""[Event "Chess960 start, no Variant header"]
[Result "*"]
[FEN "{CHESS960_START}"]
[SetUp "1"]

1. d4 d5 *""",
]
STANDARD = [0, 3, 7]


def replay(text: str) -> tuple[list[str], list[str]]:
    """python-chess's own replay of one game: (the FEN before each move, the move in UCI)."""
    game = chess.pgn.read_game(io.StringIO(text))
    board, fens, moves = game.board(), [], []
    for move in game.mainline_moves():
        fens.append(board.fen())
        moves.append(move.uci())
        board.push(move)
    return fens, moves


@pytest.fixture
def mixed(tmp_path):
    path = tmp_path / "mixed.pgn"
    path.write_text("\n\n".join(GAMES) + "\n")
    return path


def test_the_test_games_are_what_they_claim():
    # Every game but the broken one is legal under its own rules; the Chess960 one castles (king takes rook).
    for i, text in enumerate(GAMES):
        game = chess.pgn.read_game(io.StringIO(text))
        assert bool(game.errors) == (i == 5), (i, game.errors)
    chess960 = chess.pgn.read_game(io.StringIO(GAMES[1]))
    board = chess960.board()
    assert board.chess960 and chess.Board.from_chess960_pos(3).fen() == CHESS960_START
    castles = []
    for move in chess960.mainline_moves():
        if board.is_castling(move):
            castles.append(move.uci())
        board.push(move)
    assert castles == ["f1g1", "f8g8"]
    assert "N@f3" in GAMES[2] and chess.Move.from_uci("N@f3") in list(chess.pgn.read_game(io.StringIO(GAMES[2])).mainline_moves())


def test_variants_are_counted_by_name_and_only_standard_games_are_read(mixed):
    positions, counts, files = read_pgn(str(mixed))
    assert files == 1 and counts.games == 3 and counts.malformed == 1
    assert dict(counts.variants) == {"Chess960": 3, "crazyhouse": 1, "antichess": 1}
    assert counts.filtered == 0 and counts.empty == 0
    assert counts.summary(files) == ("pgn: 3 games, 20 positions from 1 file(s); skipped 3 Chess960, 1 crazyhouse, "
                                     "1 antichess games; 1 malformed, 0 below min_elo, 0 without moves")
    fens, moves, keys = [], [], []
    for i in STANDARD:
        f, m = replay(GAMES[i])
        fens += f
        moves += m
        keys += [f"mixed.pgn#{i + 1}"] * len(f)
    assert positions.fen == fens and positions.move == moves and positions.game == keys
    assert counts.positions == len(positions) == 20
    assert positions.fen[-4] == "r3k2r/ppp2ppp/8/8/8/8/PPP2PPP/R3K2R w KQkq - 0 1"  # From Position starts at its FEN


def test_the_chess_task_prints_the_variant_counts(mixed, capsys):
    positions = ChessTask().positions({"data": {"pgn": str(mixed), "positions": 1000}})
    out = capsys.readouterr().out
    assert len(positions) == 20
    assert "skipped 3 Chess960, 1 crazyhouse, 1 antichess games; 1 malformed" in out


def test_a_file_of_other_variants_only_is_refused_with_their_counts(tmp_path, capsys):
    path = tmp_path / "variants.pgn"
    path.write_text("\n\n".join(GAMES[i] for i in (1, 2, 4)) + "\n")
    with pytest.raises(suite.SuiteError, match=r"no usable standard-chess games \(1 Chess960, 1 crazyhouse, 1 antichess, 0 malformed"):
        ChessTask().positions({"data": {"pgn": str(path), "positions": 1000}})


def test_a_single_variant_game_and_no_variants_read_as_before(tmp_path):
    path = tmp_path / "two.pgn"
    path.write_text(GAMES[0] + "\n\n" + GAMES[2] + "\n")
    counts = read_pgn(str(path))[1]
    assert "skipped 1 crazyhouse game; 0 malformed" in counts.summary(1)
    path.write_text(GAMES[0] + "\n\n" + GAMES[5] + "\n")
    counts = read_pgn(str(path))[1]
    assert counts.summary(1).endswith("skipped 1 malformed, 0 below min_elo, 0 without moves")


@pytest.mark.parametrize("header, name", [
    (None, None), ("Standard", None), ("From Position", None), ("chess", None),
    ("Chess960", "Chess960"), ("fischerandom", "Chess960"), ("Chess 960", "Chess960"),
    ("Crazyhouse", "crazyhouse"), ("Antichess", "antichess"), ("Three-check", "3check"),
    ("King of the Hill", "kingofthehill"), ("Atomic", "atomic"), ("Shogi", "Shogi"),
])
def test_variant_names_come_from_python_chess(header, name):
    headers = chess.pgn.Headers()
    if header is not None:
        headers["Variant"] = header
    assert variant(headers) == name
