"""``suite uci RUN_DIR``: the trained policy as a UCI engine on stdin/stdout.

It answers uci, isready, ucinewgame, position (startpos or fen, then moves), go (any limits: the
policy needs no search and answers at once with its best legal move), stop and quit, so the model
can be loaded into a chess GUI, cutechess-cli or lichess-bot. Malformed commands get an
``info string`` reply and are otherwise ignored, as the protocol asks.
"""
from __future__ import annotations

import sys
from pathlib import Path

import chess

from .play import load_player
from .policy import best_move


def configure(parser):
    parser.add_argument("run_dir", help="a run of task chess (or chess-mate)")


def parse_position(tokens: list[str]) -> chess.Board:
    """The arguments of ``position``: ``startpos [moves ...]`` or ``fen F1 .. F6 [moves ...]``."""
    if "moves" in tokens:
        at = tokens.index("moves")
        spec, moves = tokens[:at], tokens[at + 1:]
    else:
        spec, moves = tokens, []
    if spec[:1] == ["startpos"]:
        board = chess.Board()
    elif spec[:1] == ["fen"] and len(spec) > 1:
        board = chess.Board(" ".join(spec[1:]))
    else:
        raise ValueError("expected 'startpos' or 'fen ...'")
    for uci in moves:
        move = chess.Move.from_uci(uci)
        if move not in board.legal_moves:
            raise ValueError(f"illegal move {uci} in {board.fen()}")
        board.push(move)
    return board


def serve(model, name: str, stdin=sys.stdin, stdout=sys.stdout) -> None:
    def say(line: str) -> None:
        stdout.write(line + "\n")
        stdout.flush()

    board = chess.Board()
    for line in stdin:
        words = line.split()
        if not words:
            continue
        command, rest = words[0], words[1:]
        if command == "uci":
            say(f"id name {name}")
            say("id author suite")
            say("uciok")
        elif command == "isready":
            say("readyok")
        elif command == "ucinewgame":
            board = chess.Board()
        elif command == "position":
            try:
                board = parse_position(rest)
            except ValueError as e:
                say(f"info string bad position command ({e}); keeping the previous position")
        elif command == "go":
            if board.is_game_over():
                say("bestmove 0000")
                continue
            move = best_move(model, board)  # with the position's move history: repetitions are passed over
            say(f"info depth 1 nodes 1 pv {move.uci()}")
            say(f"bestmove {move.uci()}")
        elif command == "quit":
            break
        elif command in ("stop", "ponderhit", "setoption", "debug", "register"):
            continue
        else:
            say(f"info string unknown command {command}")


def run(args) -> int:
    model = load_player(args.run_dir)
    serve(model, f"suite chess ({Path(args.run_dir).name})")
    return 0
