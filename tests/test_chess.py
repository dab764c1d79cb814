"""Chess plugin, in-process: tokenizer and move vocabulary, policy head, the choice objective, PGN
reading (plain, .gz, .bz2, .zst; malformed games counted), mate-in-one puzzles, match statistics."""
from __future__ import annotations

import bz2
import gzip
import io
import random

import chess
import chess.engine
import chess.pgn
import pytest
import torch

import suite
from suite.plugins.chess import data as chess_data
from suite.plugins.chess.heads import PolicyHead
from suite.plugins.chess.mate import MATE_SOURCES, game_mate_positions, mate_positions
from suite.plugins.chess.pgn import read_pgn
from suite.plugins.chess.play import elo, summarise, wilson
from suite.plugins.chess.policy import best_move, parse_fen
from suite.plugins.chess.tokenizer import LENGTH, MOVES, ChessTokenizer


def random_boards(n: int, seed: int = 0) -> list[chess.Board]:
    rng, board, out = random.Random(seed), chess.Board(), []
    while len(out) < n:
        if board.is_game_over():
            board = chess.Board()
        out.append(board.copy(stack=False))
        board.push(rng.choice(list(board.legal_moves)))
    return out


def random_game_pgn(rng: random.Random, index: int, plies: int = 40) -> str:
    board = chess.Board()
    for _ in range(plies):
        if board.is_game_over():
            break
        board.push(rng.choice(list(board.legal_moves)))
    game = chess.pgn.Game.from_board(board)
    game.headers.update({"Event": f"test {index}", "White": "a", "Black": "b", "Result": rng.choice(["1-0", "0-1", "1/2-1/2"]),
                         "WhiteElo": str(1000 + 100 * (index % 10)), "BlackElo": "1500"})
    return str(game)


BAD_GAME = '[Event "broken"]\n[Result "1-0"]\n\n1. e4 e5 2. Ke3 Nf6 1-0'  # 2. Ke3 is illegal


def pgn_text(games: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    texts = [random_game_pgn(rng, i) for i in range(games)]
    texts.insert(3, BAD_GAME)
    return "\n\n".join(texts) + "\n"


# -- tokenizer and vocabulary ------------------------------------------------------------------
def test_move_vocabulary_covers_every_legal_move():
    assert len(MOVES) == 1968 and len(set(MOVES)) == 1968
    assert sum(len(m) == 5 for m in MOVES) == 176
    tok = ChessTokenizer()
    promo = chess.Board("8/P6k/8/8/8/8/6Kp/8 w - - 0 1")
    for board in random_boards(300) + [promo, chess.Board("8/P6k/8/8/8/8/6Kp/8 b - - 0 1")]:
        flip = tok.flips(board)
        ids = tok.legal_ids(board)
        assert len(set(ids)) == board.legal_moves.count()
        assert [tok.move(i, flip) for i in ids] == list(board.legal_moves)


def test_tokens_fixed_length_and_mirrored_for_black():
    tok = ChessTokenizer()
    start = chess.Board()
    after = chess.Board()
    after.push_san("e4")
    assert tok.encode(start).shape == (LENGTH,)
    # Black to move after 1. e4 looks, mirrored, like White to move with a pawn on e5 of the opponent.
    mirrored = chess.Board("rnbqkbnr/pppp1ppp/8/4p3/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1")
    assert (tok.encode(after) == tok.encode(mirrored)).all()
    assert tok.move_id("e7e5", flip=True) == tok.move_id("e2e4", flip=False)
    assert not (ChessTokenizer(mirror=False).encode(after) == tok.encode(after)).all()
    assert ChessTokenizer.from_state(tok.state()) == tok
    # FEN text and board give the same tokens; en passant and castling rights are seen.
    board = chess.Board("rnbqkbnr/ppp1p1pp/8/3pPp2/8/8/PPPP1PPP/RNBQKBNR w Kq f6 0 3")
    assert (tok.encode(board) == tok.encode(board.fen())).all()
    assert "ep:f" in tok.describe(tok.encode(board)) and tok.describe(tok.encode(board)).count("castle:+") == 2


def test_attack_tokens_say_who_attacks_each_square_from_the_side_to_moves_view():
    tok, plain = ChessTokenizer(attacks=True), ChessTokenizer()
    assert (tok.vocab_size, plain.vocab_size) == (36 + 3 * 13, 36)
    assert ChessTokenizer.from_state({"mirror": True}).vocab_size == 36  # runs saved before the option
    for board in random_boards(200, seed=4):
        ids, base = tok.encode(board), plain.encode(board)
        assert (tok.encode(board.fen()) == ids).all() and (tok.encode(board.mirror()) == ids).all()
        flip = tok.flips(board)
        for i in range(64):  # square i of the encoded board is square i (or i ^ 56, mirrored) of the real one
            square = i ^ 56 if flip else i
            who = board.is_attacked_by(board.turn, square) + 2 * board.is_attacked_by(not board.turn, square)
            assert ids[1 + i] == (base[1 + i] if who == 0 else 36 + 13 * (who - 1) + base[1 + i]), (board.fen(), i)
    back_rank = chess.Board("6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1")
    squares = tok.describe(tok.encode(back_rank)).split()[1:65]
    assert squares[chess.A8] == "sq:.:us" and squares[chess.G8] == "sq:k" and squares[chess.H8] == "sq:.:them"


def test_check_tokens_say_how_a_piece_on_each_square_would_check_the_opponents_king():
    tok, attacks = ChessTokenizer(attacks=True, checks=True), ChessTokenizer(attacks=True)
    assert tok.vocab_size == 36 + 3 * 13 + 3 * 4 * 13 and attacks.vocab_size == 36 + 3 * 13
    assert ChessTokenizer.from_state({"mirror": True, "attacks": True}) == attacks  # runs saved before the option
    for board in random_boards(100, seed=5):
        ids, base = tok.encode(board), attacks.encode(board)
        assert (tok.encode(board.fen()) == ids).all() and (tok.encode(board.mirror()) == ids).all()
        flip, king = tok.flips(board), board.king(not board.turn)
        for i in range(64):
            square = i ^ 56 if flip else i
            how = 0  # the oracle: put a rook, a bishop, a knight of the side to move there and look
            for c, piece in enumerate((chess.ROOK, chess.BISHOP, chess.KNIGHT), 1):
                probe = board.copy(stack=False)
                probe.set_piece_at(square, chess.Piece(piece, board.turn))
                if square != king and king in probe.attacks(square):
                    how = c
            # base: the attack token, plain piece id p or 36 + 13 (a - 1) + p
            p, a = (base[1 + i], 0) if base[1 + i] < 36 else ((base[1 + i] - 36) % 13, (base[1 + i] - 36) // 13 + 1)
            assert ids[1 + i] == (base[1 + i] if how == 0 else 75 + 13 * (4 * (how - 1) + a) + p), (board.fen(), i)
    mate = chess.Board("6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1")  # Ra8 mates along the back rank
    squares = tok.describe(tok.encode(mate)).split()[1:65]
    assert squares[chess.A8] == "sq:.:us:line" and squares[chess.E7] == "sq:.:none:knight"
    alone = ChessTokenizer(checks=True).describe(ChessTokenizer(checks=True).encode(mate)).split()[1:65]
    assert alone[chess.A8] == "sq:.:none:line" and alone[chess.A1] == "sq:R"  # without attack tokens


def test_count_tokens_say_how_many_pieces_of_each_side_attack_each_square():
    tok, plain = ChessTokenizer(attacks=True, checks=True, counts=True), ChessTokenizer(attacks=True, checks=True)
    assert tok.vocab_size == plain.vocab_size + 13 * 9 * 4
    assert ChessTokenizer.from_state({"mirror": True, "attacks": True, "checks": True}) == plain  # runs saved before the option
    for board in random_boards(150, seed=6):
        ids, base = tok.encode(board).astype(int), plain.encode(board).astype(int)
        assert (tok.encode(board.fen()) == ids).all() and (tok.encode(board.mirror()) == ids).all()
        assert (ids[:1] == base[:1]).all() and (ids[65:] == base[65:]).all()
        flip = tok.flips(board)
        for i in range(64):
            square = i ^ 56 if flip else i
            us, them = (min(2, len(board.attackers(side, square))) for side in (board.turn, not board.turn))
            # the check token's piece and check kind, and the counts, in COUNT0 + 13 (9 c + 3 u + t) + p
            b = base[1 + i]
            piece, how = (b, 0) if b < 36 else ((b - 36) % 13, 0) if b < 75 else ((b - 75) % 13, (b - 75) // 52 + 1)
            assert ids[1 + i] == 231 + 13 * (9 * how + 3 * us + them) + piece, (board.fen(), i)
    battery = chess.Board("4k3/8/8/3p4/8/8/3R4/3RK3 w - - 0 1")  # d2 attacks d5; d1 does not (behind d2)
    squares = tok.describe(tok.encode(battery)).split()[1:65]
    assert squares[chess.D5] == "sq:p:u1t0:none" and squares[chess.D2] == "sq:R:u2t0:none"  # d1 and e1 guard d2


def test_policy_head_scores_every_move():
    head = PolicyHead(32)
    logits = head(torch.randn(3, LENGTH, 32), {})
    assert logits.shape == (3, 1968) and torch.isfinite(logits).all()


# -- the choice objective ----------------------------------------------------------------------
def test_choice_objective_masks_illegal_options_and_counts_any_right_answer():
    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, batch):
            return self.logits

    logits = torch.tensor([[5.0, 1.0, 0.0, -1.0], [0.0, 3.0, 2.0, 1.0]])
    legal = torch.tensor([[False, True, True, False], [True, True, True, True]])
    batch = {"label": torch.tensor([1, 2]), "legal": legal}
    obj = suite.Choice(type("T", (), {})(), None, {"model": {}})
    obj.evaluate(Fixed(logits), batch, "val")
    m = obj.compute("val")
    assert m["accuracy"] == 0.5  # row 0 picks option 1 (option 0 is illegal), row 1 picks 1 but 2 was right
    assert m["legal_rate"] == 0.5  # the unmasked argmax of row 0 is illegal
    assert m["top3_accuracy"] == 1.0
    correct = torch.tensor([[False, True, False, False], [False, True, True, False]])
    obj.evaluate(Fixed(logits), {**batch, "correct": correct}, "val")
    assert obj.compute("val")["accuracy"] == 1.0
    assert torch.isinf(suite.mask_options(logits, legal)[0, 0])
    # With mask_loss the loss is the one trained (over the legal options only), and legality, not
    # learned, is not reported.
    masked = suite.Choice(type("T", (), {})(), None, {"model": {"mask_loss": True}})
    masked.evaluate(Fixed(logits), batch, "val")
    m = masked.compute("val")
    assert "legal_rate" not in m and m["accuracy"] == 0.5
    assert m["loss"] == pytest.approx(float(masked.loss(Fixed(logits), batch)))
    assert m["loss"] < float(obj.loss(Fixed(logits), batch))


# -- PGN ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pgn", ".pgn.gz", ".pgn.bz2", ".pgn.zst"])
def test_pgn_streams_every_compression_and_counts_malformed_games(tmp_path, suffix):
    text = pgn_text(8).encode()
    path = tmp_path / f"games{suffix}"
    if suffix.endswith(".gz"):
        path.write_bytes(gzip.compress(text))
    elif suffix.endswith(".bz2"):
        path.write_bytes(bz2.compress(text))
    elif suffix.endswith(".zst"):
        zstandard = pytest.importorskip("zstandard")
        path.write_bytes(zstandard.ZstdCompressor().compress(text))
    else:
        path.write_bytes(text)
    positions, counts, files = read_pgn(str(tmp_path / "games*"))
    assert files == 1 and counts.games == 8 and counts.malformed == 1
    assert len(positions) == counts.positions == sum(1 for _ in positions.fen)
    game = chess.pgn.read_game(io.StringIO(pgn_text(8).split("\n\n[Event")[0]))
    first = [m.uci() for m in game.mainline_moves()]
    assert positions.move[:len(first)] == first and positions.fen[0] == chess.STARTING_FEN
    filtered = read_pgn(str(path), min_elo=1500)[1]
    assert filtered.filtered == 5 and filtered.games == 3


def test_pgn_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(suite.SuiteError, match="no such file"):
        read_pgn(str(tmp_path / "nope.pgn"))


def test_splits_are_by_game():
    p = chess_data.Positions()
    for g in range(200):
        for ply in range(5):
            p.fen.append(chess.STARTING_FEN)
            p.move.append("e2e4")
            p.value.append(1)
            p.game.append(f"g{g}")
    parts = chess_data.split_by_game(p, 10, 10)
    games = {s: set(q.game) for s, q in parts.items()}
    assert not (games["train"] & games["val"]) and not (games["train"] & games["test"]) and not (games["val"] & games["test"])
    assert all(len(q) % 5 == 0 and len(q) for q in parts.values())


# -- mate in one -------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["placement", "games"])
def test_mate_puzzles_list_every_mating_move(source):
    p = MATE_SOURCES[source](15, seed=1)
    assert len(p) == 15
    for fen, correct in zip(p.fen, p.correct):
        board = chess.Board(fen)
        assert board.is_valid() and not board.is_game_over()
        mates = set()
        for move in board.legal_moves:
            board.push(move)
            if board.is_checkmate():
                mates.add(move.uci())
            board.pop()
        assert mates == set(correct)


def test_mates_met_in_one_game_share_its_key():
    """Game mates keep a game's positions in one split (a missed mate often stays on the board)."""
    p = game_mate_positions(40, seed=3)
    assert len(set(p.game)) < len(p.game) and all(g.startswith("mate-game:3:") for g in p.game)
    board = chess.Board(p.fen[0])
    assert board.fullmove_number > 1 and len(board.piece_map()) > 4  # a game's position, not a placed one


def test_puzzles_mixed_into_games_keep_every_positions_right_moves():
    games = chess_data.Positions([chess.STARTING_FEN] * 2, ["e2e4", "d2d4"], [1, 1], ["g0", "g0"])
    puzzles = mate_positions(3, seed=2)
    games.extend(puzzles)
    assert len(games.correct) == len(games.fen) == 5
    assert games.correct[:2] == [["e2e4"], ["d2d4"]] and games.correct[2:] == puzzles.correct
    batch = chess_data.collate([s for s in chess_data.PositionSet(ChessTokenizer(), games)])
    assert batch["correct"].sum(1).tolist() == [1, 1, *map(len, puzzles.correct)]
    assert batch["correct"][torch.arange(5), batch["label"]].all()  # the labelled move is always a right one


class Favours(torch.nn.Module):
    """A stand-in policy that puts almost all its probability on one move."""

    tokenizer, device = ChessTokenizer(), torch.device("cpu")

    def __init__(self, board: chess.Board, uci: str):
        super().__init__()
        self.favourite = self.tokenizer.move_id(uci, self.tokenizer.flips(board))

    def forward(self, batch):
        logits = torch.zeros(len(batch["inputs"]), len(MOVES))
        logits[:, self.favourite] = 10.0
        return logits


@pytest.mark.parametrize("fen, favourite, ruled", [
    ("6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1", "a1a2", "a1a8"),  # the back-rank mate is taken
    ("k7/8/8/2K5/8/8/8/1Q6 w - - 0 1", "b1b6", None),        # the stalemating move is passed over
])
def test_play_rules_take_mates_and_pass_over_stalemates(fen, favourite, ruled):
    board = chess.Board(fen)
    model = Favours(board, favourite)
    assert best_move(model, board, rules=False).uci() == favourite
    move = best_move(model, board)
    board.push(move)
    assert board.is_checkmate() if ruled else not board.is_stalemate()
    assert ruled is None or move.uci() == ruled


# -- input checks and statistics ---------------------------------------------------------------
@pytest.mark.parametrize("fen, message", [
    ("not a fen", "invalid FEN"),
    ("8/8/8/8/8/8/8/8 w - - 0 1", "invalid position"),
    ("7k/6Q1/6K1/8/8/8/8/8 b - - 0 1", "game is over"),
    ("7k/8/6QK/8/8/8/8/8 b - - 0 1", "game is over"),  # stalemate
])
def test_bad_positions_are_one_line_errors(fen, message):
    with pytest.raises(suite.SuiteError, match=message) as e:
        parse_fen(fen)
    assert "\n" not in str(e.value)


def test_match_statistics():
    s = summarise([1.0] * 19 + [0.5])
    assert s["wins"] == 19 and s["draws"] == 1 and s["score"] == 0.975
    lo, hi = s["score_ci95"]
    assert 0.75 < lo < 0.975 < hi <= 1.0
    assert elo(0.5) == 0 and elo(1.0) == float("inf") and round(elo(0.76)) == 200
    assert wilson(0.0, 10)[0] == 0.0


@pytest.mark.parametrize("games, filled", [(3, True), (5, True), (2, False)])
def test_small_game_sets_get_a_val_and_a_test_game_when_they_can(games, filled):
    p = chess_data.Positions([chess.STARTING_FEN] * games, ["e2e4"] * games, [1] * games, [f"g{i}" for i in range(games)])
    plain = chess_data.split_by_game(p, 2, 3)
    parts = chess_data.split_by_game(p, 2, 3, fill=True)
    assert sum(map(len, parts.values())) == games
    assert (len(parts["val"]) >= 1 and len(parts["test"]) >= 1 and len(parts["train"]) >= 1) == filled
    if not filled:
        assert {s: len(q) for s, q in parts.items()} == {s: len(q) for s, q in plain.items()}


def test_soft_targets_weight_moves_by_expected_score_and_the_loss_uses_them():
    from suite.plugins.chess.generate import soft_target
    from suite.tasks.choice import choice_loss

    soft = soft_target([b"e2e4", b"d2d4", b"g1f3", b""], [0.60, 0.55, 0.30, float("nan")], 0.05)
    assert list(soft) == ["e2e4", "d2d4", "g1f3"] and sum(soft.values()) == pytest.approx(1.0)
    assert soft["e2e4"] / soft["d2d4"] == pytest.approx(torch.e, rel=1e-4) and soft["g1f3"] < 0.01
    p = chess_data.Positions([chess.STARTING_FEN] * 2, ["e2e4", "e2e4"], [1, 1], ["g0", "g1"], soft=[soft, {"e2e4": 1.0}])
    p.extend(mate_positions(2, seed=3))  # puzzles: uniform over their mating moves
    batch = chess_data.collate([s for s in chess_data.PositionSet(ChessTokenizer(), p)])
    assert batch["soft"].shape == (4, 1968) and torch.allclose(batch["soft"].sum(1), torch.ones(4))
    tok = ChessTokenizer()
    assert batch["soft"][0, tok.move_id("d2d4", False)] == pytest.approx(soft["d2d4"])
    assert (batch["soft"][2:] > 0).sum(1).tolist() == [len(c) for c in p.correct[2:]]
    # The loss is the cross-entropy to the distribution: lowest when the logits match it.
    target = batch["soft"][:1]
    matched = choice_loss(torch.log(target.clamp_min(1e-9)), {"soft": target, "label": batch["label"][:1]})
    peaked = choice_loss(torch.log((tok.move_id("e2e4", False) == torch.arange(1968)).float().clamp_min(1e-9))[None],
                         {"soft": target, "label": batch["label"][:1]})
    assert matched < peaked
    masked = suite.mask_options(torch.zeros(1, 1968), batch["soft"][:1] > 0)  # -inf where the target is 0: still finite
    assert torch.isfinite(choice_loss(masked, {"soft": target, "label": batch["label"][:1]}))


class FirstMoveEngine:
    """A stand-in for Stockfish: its best move is the first legal one, its evaluation level."""

    def analyse(self, board, limit, multipv=None, game=None):
        return {"pv": [next(iter(board.legal_moves))], "score": chess.engine.PovScore(chess.engine.Cp(0), chess.WHITE)}


def test_strong_epsilon_makes_the_engine_side_play_random_moves_too():
    from suite.plugins.chess import generate

    base = {"nodes": 1, "open_plies": 0, "epsilon": 0.0, "weak_games": 1.0, "weak_epsilon": [0.0, 0.0], "max_plies": 40,
            "shard_positions": 10, "seed": 0, "targets": "best", "positions": 10}
    assert generate.settings_of(base) == generate.settings_of({**base, "strong_epsilon": None})  # old caches keep their names
    assert generate.cache_dir(base) != generate.cache_dir({**base, "strong_epsilon": [0.0, 1.0]})

    def made(before, after):  # the move played between two consecutive positions
        board = chess.Board(before)
        return next(m.uci() for m in board.legal_moves if (board.push(m), board.fen() == after, board.pop())[1])

    for strong in (None, [1.0, 1.0]):
        out = {"fen": [], "move": [], "value": [], "cand": []}
        s = {**generate.settings_of({**base, "strong_epsilon": strong}), "max_plies": 40}
        generate._play_game(FirstMoveEngine(), random.Random(1), s, out)
        played = [made(a, b) for a, b in zip(out["fen"], out["fen"][1:])]
        share = sum(m == label for m, label in zip(played, out["move"])) / len(played)
        # weak_epsilon 0: without strong_epsilon both sides play the label; with it at 1, one side is random
        assert share == 1.0 if strong is None else 0.3 < share < 0.75
