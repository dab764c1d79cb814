"""The games of ``suite elo``'s ladder: which games (make_jobs), one game (play_job), and all of them
on a pool of worker processes (play_ladder).

The model plays games against Stockfish at each level, colours alternating, each pair of games (one
with each colour) from the same varied opening. A level is ("elo", rating): Stockfish's strength
limiter at ``--movetime`` a move, or ("nodes", N): full-strength Stockfish searching N nodes a move;
a "calibration" game is the node level against the lowest ``UCI_Elo`` level, which rates it.

Games run in parallel, one process per core by default (a ``concurrent.futures`` process pool),
each with its own copy of the model and its own single-threaded Stockfish.
"""
from __future__ import annotations

import datetime
import multiprocessing
import multiprocessing.util
import os
import random
from concurrent.futures import ProcessPoolExecutor, as_completed

import chess
import chess.engine
import chess.pgn

from .play import load_player, model_points, play_game
from .policy import random_opening

CALIBRATION = "calibration"


# -- the games, in worker processes ------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(run_dir: str, stockfish: str, movetime: float, load=load_player) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER.clear()
    _WORKER.update(model=load(run_dir) if run_dir else None, stockfish=stockfish, movetime=movetime, engines={})
    # The engines' I/O threads would keep a worker alive at the pool's shutdown: quit them on exit.
    multiprocessing.util.Finalize(None, _close_engines, exitpriority=10)


def _close_engines() -> None:
    for engine in _WORKER.get("engines", {}).values():
        engine.close()
    _WORKER.clear()


class Engine:
    """Stockfish at one level: ("elo", rating) with the strength limiter at --movetime, or ("nodes", N) at full strength."""

    def __init__(self, path: str, level: tuple[str, int], movetime: float):
        self.engine = chess.engine.SimpleEngine.popen_uci(path)
        self.engine.configure({"Threads": 1, "Hash": 16})
        kind, value = level
        if kind == "elo":
            self.engine.configure({"UCI_LimitStrength": True, "UCI_Elo": int(value)})
            self.limit = chess.engine.Limit(time=movetime)
        else:
            self.limit = chess.engine.Limit(nodes=int(value))

    def move(self, board: chess.Board) -> chess.Move:
        return self.engine.play(board, self.limit).move

    def close(self):
        self.engine.quit()


def _engine(level: tuple[str, int]) -> Engine:
    engines = _WORKER["engines"]
    if level not in engines:
        engines[level] = Engine(_WORKER["stockfish"], level, _WORKER["movetime"])
    return engines[level]


def play_job(job: dict) -> dict:
    """One game of the ladder; returns the job with the game's PGN text and the first player's score."""
    rng = random.Random(job["seed"])
    opening = [chess.Move.from_uci(m) for m in job["opening"]]
    if job["kind"] == CALIBRATION:  # Stockfish's node level against its lowest UCI_Elo level
        weak, anchor = _engine(job["level"]), _engine(job["anchor"])
        board = chess.Board()
        for m in opening:
            board.push(m)
        while not board.is_game_over() and board.ply() < job["max_plies"]:
            board.push((weak if board.turn == job["first_white"] else anchor).move(board))
        outcome = board.outcome()
        game = chess.pgn.Game.from_board(board)
        game.headers["Result"] = outcome.result() if outcome else "1/2-1/2"
    else:
        game = play_game(_WORKER["model"], _engine(job["level"]), job["first_white"], job["max_plies"], rules=job["rules"],
                         opening=opening, temperature=job["temperature"], rng=rng)
    white, black = (job["first"], job["second"]) if job["first_white"] else (job["second"], job["first"])
    game.headers.update({"Event": "suite elo", "Site": "suite", "Round": str(job["index"] + 1), "White": white, "Black": black,
                         "Date": datetime.date.today().strftime("%Y.%m.%d")})
    return {**job, "pgn": str(game), "score": model_points(game, job["first_white"])}


# -- the ladder ----------------------------------------------------------------------------------
def level_name(level: tuple[str, int], engine_name: str) -> str:
    kind, value = level
    return f"{engine_name} UCI_Elo {value}" if kind == "elo" else f"{engine_name} {value} nodes"


def make_jobs(args, levels: list[tuple[str, int]], names: dict, me: str) -> list[dict]:
    """Every game of the ladder as a job: ``args.games`` against each level, colours alternating,
    a pair of games from one opening; with a node level and a UCI_Elo level, its calibration games."""
    rng = random.Random(f"elo:{args.seed}")
    jobs = []
    ladder = [(level, args.games, "model") for level in levels]
    anchor = next((lv for lv in levels if lv[0] == "elo"), None)
    nodes_level = next((lv for lv in levels if lv[0] == "nodes"), None)
    if nodes_level and anchor:
        ladder.append((nodes_level, args.calibration_games if args.calibration_games is not None else args.games, CALIBRATION))
    for level, games, kind in ladder:
        opening: list[str] = []
        for i in range(games):
            if i % 2 == 0:
                opening = [m.uci() for m in random_opening(rng, args.open_plies, args.book)] if (args.open_plies or args.book) else []
            first, second = (me, names[level]) if kind == "model" else (names[level], names[anchor])
            jobs.append({"index": len(jobs), "kind": kind, "level": level, "anchor": anchor, "first": first, "second": second,
                         "first_white": i % 2 == 0, "opening": opening, "seed": rng.getrandbits(63),
                         "max_plies": args.max_plies, "rules": not args.raw, "temperature": args.temperature})
    return jobs


def play_ladder(jobs: list[dict], workers: int, init: tuple, done, *, play=play_job, load=load_player) -> None:
    """Play ``jobs`` on ``workers`` processes (in this one when 1), calling ``done`` with each
    finished job (``play_job``'s result) as it comes. ``init`` is (run_dir, stockfish, movetime);
    ``play`` plays one job and ``load`` loads the model in a worker (``suite elo`` passes its own
    names, which the tests replace)."""
    initargs = (*init, load)
    try:
        if workers == 1:
            _init_worker(*initargs)
            for job in jobs:
                done(play(job))
        else:
            ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=initargs) as pool:
                futures = [pool.submit(play, job) for job in jobs]
                try:
                    for f in as_completed(futures):
                        done(f.result())
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        _close_engines()
