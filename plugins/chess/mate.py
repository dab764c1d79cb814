"""Mate-in-one puzzles, made with python-chess alone.

A puzzle is a legal position, not yet over, in which the side to move has at least one mating
move; every mating move counts as a right answer. Positions come from random material: two
kings, a handful of pieces for the attacker and a few for the defender, the defending king
pushed towards the edge where mates happen. Each puzzle is its own "game" for the split, keyed by
its board, so the same puzzle never lands in two splits.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import chess

import suite

from .data import Positions

ATTACK = [chess.QUEEN, chess.ROOK, chess.ROOK, chess.BISHOP, chess.BISHOP, chess.KNIGHT, chess.KNIGHT, chess.PAWN, chess.PAWN]
DEFEND = [chess.ROOK, chess.BISHOP, chess.KNIGHT, chess.PAWN, chess.PAWN, chess.PAWN]
EDGE = [s for s in chess.SQUARES if chess.square_file(s) in (0, 7) or chess.square_rank(s) in (0, 7)]


def mating_moves(board: chess.Board) -> list[chess.Move]:
    out = []
    for move in board.legal_moves:
        if board.gives_check(move):
            board.push(move)
            if board.is_checkmate():
                out.append(move)
            board.pop()
    return out


def random_position(rng: random.Random) -> chess.Board:
    board = chess.Board(None)
    attacker = rng.choice([chess.WHITE, chess.BLACK])
    free = list(chess.SQUARES)
    rng.shuffle(free)
    king = rng.choice(EDGE) if rng.random() < 0.8 else free[0]
    free.remove(king)
    board.set_piece_at(king, chess.Piece(chess.KING, not attacker))
    board.set_piece_at(free.pop(), chess.Piece(chess.KING, attacker))
    for color, pool, n in ((attacker, ATTACK, rng.randint(1, 4)), (not attacker, DEFEND, rng.randint(0, 3))):
        for piece in rng.sample(pool, n):
            square = free.pop()
            if piece == chess.PAWN and chess.square_rank(square) in (0, 7):
                continue
            board.set_piece_at(square, chess.Piece(piece, color))
    board.turn = attacker
    return board


def add_puzzle(out: Positions, board: chess.Board, mates: list[chess.Move], key: str) -> None:
    """Append a mate-in-one position: every mating move right, the first the label, a won game."""
    out.fen.append(board.fen())
    out.move.append(mates[0].uci())
    out.value.append(2)
    out.game.append(key)
    out.correct.append([m.uci() for m in mates])


def mate_positions(n: int, seed: int) -> Positions:
    """``n`` distinct mate-in-one puzzles."""
    rng = random.Random(seed)
    out, seen = Positions(correct=[]), set()
    while len(out) < n:
        board = random_position(rng)
        if not board.is_valid() or board.is_game_over():
            continue
        mates = mating_moves(board)
        key = board.board_fen() + (" w" if board.turn else " b")
        if not mates or key in seen:
            continue
        seen.add(key)
        add_puzzle(out, board, mates, key)
    return out


VALUE = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9, chess.KING: 0}


def greedy_move(board: chess.Board, rng: random.Random, epsilon: float) -> chess.Move:
    """A material-greedy move: the most valuable capture or promotion, less the value of the piece
    when the square it goes to is attacked; a random move with probability ``epsilon``."""
    moves = list(board.legal_moves)
    if rng.random() < epsilon:
        return rng.choice(moves)

    def gain(move: chess.Move) -> float:
        victim = board.piece_type_at(move.to_square) or (chess.PAWN if board.is_en_passant(move) else None)
        v = VALUE[victim] if victim else 0
        v += VALUE[move.promotion] if move.promotion else 0
        if board.is_attacked_by(not board.turn, move.to_square):
            v -= 0.9 * VALUE[board.piece_type_at(move.from_square)]
        return v + 0.5 * rng.random()

    return max(moves, key=gain)


def game_mate_positions(n: int, seed: int) -> Positions:
    """``n`` mate-in-one positions met in games of a material-greedy player (random with a
    probability drawn per game from 0-0.5) against the random mover: the positions a policy meets
    when it has won material from a weak opponent and must finish. The greedy side takes a mate
    it has with probability 0.3, so a game yields several. Positions of one game share a key."""
    rng = random.Random(seed)
    out, game = Positions(correct=[]), 0
    while len(out) < n:
        board, strong, epsilon, game = chess.Board(), rng.random() < 0.5, rng.uniform(0.0, 0.5), game + 1
        while len(out) < n and not board.is_game_over() and board.ply() < 300:
            if board.turn == strong:
                mates = mating_moves(board)
                if mates:
                    add_puzzle(out, board, mates, f"mate-game:{seed}:{game}")
                    if rng.random() < 0.3:
                        break
                board.push(greedy_move(board, rng, epsilon))
            else:
                board.push(rng.choice(list(board.legal_moves)))
    return out


MATE_SOURCES = {"placement": mate_positions, "games": game_mate_positions}


def write_mate_chunk(n: int, seed: int, path, source: str = "placement") -> int:
    """``n`` puzzles from ``seed``, written as JSON to ``path`` (a worker process's job)."""
    p = MATE_SOURCES[source](n, seed)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fen": p.fen, "correct": p.correct, "game": p.game}))
    tmp.replace(path)
    return len(p)


def read_mate_chunk(path) -> dict | None:
    """A chunk's puzzles, ``{"fen": [...], "correct": [[...], ...], "game": [...]}`` (``game`` is
    absent from chunks of older versions); None, with a warning naming the file, when it is damaged
    or not a chunk: the caller makes it again (a cache is never an error)."""
    try:
        d = json.loads(Path(path).read_bytes())
        if not isinstance(d, dict) or not isinstance(d.get("fen"), list) or not isinstance(d.get("correct"), list):
            raise ValueError("not a chunk of puzzles: no fen and correct lists")
        if not d["fen"] or len(d["fen"]) != len(d["correct"]) or any(not c for c in d["correct"]):
            raise ValueError(f"{len(d['fen'])} positions with {len(d['correct'])} lists of right moves")
    except json.JSONDecodeError as e:
        reason = f"not valid JSON: truncated or corrupt at line {e.lineno} column {e.colno}"
    except UnicodeDecodeError:
        reason = "not valid JSON: binary garbage, not text"
    except (OSError, ValueError, TypeError) as e:
        reason = str(e)
    else:
        return d
    print(f"suite: warning: {path}: damaged mate-in-one cache ({reason}); it is made again", file=sys.stderr)
    return None


def mate_chunks(n: int, seed: int, root, workers: int = 1, chunk: int = 1000, progress: bool = True,
                source: str = "placement") -> list[Path]:
    """The files of ``n`` puzzles (rounded up to whole chunks) under ``root``, made where missing
    in chunks of ``chunk`` by ``workers`` processes; ``source`` is a key of ``MATE_SOURCES``."""
    from .generate import in_processes

    if source not in MATE_SOURCES:
        raise suite.SuiteError(f"data.mate_from must be one of {', '.join(MATE_SOURCES)}, not {source!r}")
    root = Path(root) / (f"mate-in-one-{chunk}" if source == "placement" else f"mate-in-one-{source}-{chunk}")
    paths = [root / f"chunk-{seed}-{i:05d}.json" for i in range(-(-n // chunk))]
    missing = [i for i, p in enumerate(paths) if not p.is_file() or read_mate_chunk(p) is None]  # a damaged chunk is made again
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        print(f"generating {len(missing) * chunk} mate-in-one puzzles into {root}")
        jobs = [(chunk, seed * 100_003 + i, paths[i], source) for i in missing]
        in_processes(write_mate_chunk, jobs, workers, "mate-in-one puzzles", chunk, progress)
    return paths


def cached_mate_positions(n: int, seed: int, root, workers: int = 1, chunk: int = 1000, progress: bool = True,
                          source: str = "placement") -> Positions:
    """``n`` puzzles, made once (``mate_chunks``) and kept as JSON under ``root`` for the next run."""
    out = Positions(correct=[])
    for path in mate_chunks(n, seed, root, workers, chunk, progress, source):
        d = read_mate_chunk(path)
        if d is None:  # damaged since mate_chunks read it: another process is writing the cache
            raise suite.SuiteError(f"{path}: the mate-in-one cache changed while it was read; run the command again")
        games = d.get("game") or [fen.rsplit(" ", 4)[0] for fen in d["fen"]]  # a puzzle alone is its own game
        for fen, correct, game in zip(d["fen"], d["correct"], games):
            out.fen.append(fen)
            out.move.append(correct[0])
            out.value.append(2)
            out.game.append(game)
            out.correct.append(correct)
    return out.select(range(min(n, len(out))))
