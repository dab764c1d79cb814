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
from pathlib import Path

import chess

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
        out.fen.append(board.fen())
        out.move.append(mates[0].uci())
        out.value.append(2)
        out.game.append(key)
        out.correct.append([m.uci() for m in mates])
    return out


def write_mate_chunk(n: int, seed: int, path) -> int:
    """``n`` puzzles from ``seed``, written as JSON to ``path`` (a worker process's job)."""
    p = mate_positions(n, seed)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fen": p.fen, "correct": p.correct}))
    tmp.replace(path)
    return len(p)


def mate_chunks(n: int, seed: int, root, workers: int = 1, chunk: int = 1000, progress: bool = True) -> list[Path]:
    """The files of ``n`` puzzles (rounded up to whole chunks) under ``root``, made where missing
    in chunks of ``chunk`` by ``workers`` processes."""
    from .generate import in_processes

    root = Path(root) / f"mate-in-one-{chunk}"
    paths = [root / f"chunk-{seed}-{i:05d}.json" for i in range(-(-n // chunk))]
    missing = [i for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        print(f"generating {len(missing) * chunk} mate-in-one puzzles into {root}")
        jobs = [(chunk, seed * 100_003 + i, paths[i]) for i in missing]
        in_processes(write_mate_chunk, jobs, workers, "mate-in-one puzzles", chunk, progress)
    return paths


def cached_mate_positions(n: int, seed: int, root, workers: int = 1, chunk: int = 1000, progress: bool = True) -> Positions:
    """``n`` puzzles, made once (``mate_chunks``) and kept as JSON under ``root`` for the next run."""
    out = Positions(correct=[])
    for path in mate_chunks(n, seed, root, workers, chunk, progress):
        d = json.loads(path.read_text())
        for fen, correct in zip(d["fen"], d["correct"]):
            out.fen.append(fen)
            out.move.append(correct[0])
            out.value.append(2)
            out.game.append(fen.rsplit(" ", 4)[0])
            out.correct.append(correct)
    return out.select(range(min(n, len(out))))
