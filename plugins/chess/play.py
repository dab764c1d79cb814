"""``suite play RUN_DIR``: full games against Stockfish or a random mover, alternating colours.

Games are written as PGN; the summary gives wins/draws/losses, the score with a 95% confidence
interval (Wilson's interval on the score, draws counting half) and the Elo difference that score
implies, with the same interval mapped to Elo.
"""
from __future__ import annotations

import datetime
import json
import math
import random
import time
from pathlib import Path

import chess
import chess.engine
import chess.pgn

import suite

from .generate import find_stockfish
from .heads import PolicyHead
from .policy import best_move, random_opening


def load_player(run_dir: str):
    """A run directory -> its module in eval mode; one clear line if it does not choose moves."""
    path = Path(run_dir)
    task, cfg, tokenizer, module = suite.load_run(path, suite.get_registry())
    if not isinstance(module.head, PolicyHead):
        raise suite.SuiteError(f"{path}: a run of task {task.name!r}, which does not choose moves (train --task chess)")
    return module.eval()


# -- opponents ---------------------------------------------------------------------------------
class RandomMover:
    name = "random"

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def move(self, board: chess.Board) -> chess.Move:
        return self.rng.choice(list(board.legal_moves))

    def close(self):
        pass


class StockfishPlayer:
    def __init__(self, path: str | None, elo: int | None, movetime: float, nodes: int | None):
        engine_path = find_stockfish(path)
        if engine_path is None:
            raise suite.SuiteError("--opponent stockfish: Stockfish was not found; install it (`apt-get install stockfish`) "
                                   "or give --stockfish PATH")
        self.engine = chess.engine.SimpleEngine.popen_uci(engine_path)
        self.limit = chess.engine.Limit(nodes=nodes) if nodes else chess.engine.Limit(time=movetime)
        self.name = f"Stockfish ({self.engine.id.get('name', engine_path)})"
        self.elo = None
        if elo:
            option = self.engine.options.get("UCI_Elo")
            if option is None:
                raise suite.SuiteError(f"{engine_path}: this engine has no UCI_Elo option; leave out --elo")
            self.elo = min(max(int(elo), option.min), option.max)
            if self.elo != int(elo):
                print(f"note: {self.engine.id.get('name', 'Stockfish')} accepts UCI_Elo {option.min}-{option.max}; playing at {self.elo}")
            self.engine.configure({"UCI_LimitStrength": True, "UCI_Elo": self.elo})
            self.name += f" at Elo {self.elo}"

    def move(self, board: chess.Board) -> chess.Move:
        return self.engine.play(board, self.limit).move

    def close(self):
        self.engine.quit()


# -- one game ----------------------------------------------------------------------------------
def play_game(model, opponent, model_white: bool, max_plies: int, rules: bool = True, opening: list[chess.Move] = (),
              temperature: float = 0.0, rng: random.Random | None = None) -> chess.pgn.Game:
    """One game from the position after ``opening``. Neither side claims draws (threefold, fifty
    moves): games end by mate, stalemate, insufficient material, fivefold repetition or the
    75-move rule, or as a draw at ``max_plies``. ``temperature`` > 0 samples the model's moves."""
    board = chess.Board()
    for move in opening:
        board.push(move)
    while not board.is_game_over() and board.ply() < max_plies:
        if board.turn == model_white:
            mover = best_move(model, board, rules, temperature, rng)
        else:
            mover = opponent.move(board)
        board.push(mover)
    outcome = board.outcome()
    game = chess.pgn.Game.from_board(board)
    game.headers["Result"] = outcome.result() if outcome else "1/2-1/2"
    game.headers["Termination"] = outcome.termination.name.lower() if outcome else f"adjudicated draw after {max_plies} plies"
    if opening:
        game.headers["Opening"] = f"{len(opening)} random plies: " + chess.Board().variation_san(opening)
    return game


def model_points(game: chess.pgn.Game, model_white: bool) -> float:
    white = {"1-0": 1.0, "0-1": 0.0}.get(game.headers["Result"], 0.5)
    return white if model_white else 1.0 - white


# -- statistics --------------------------------------------------------------------------------
def wilson(score: float, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    centre = (score + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(score * (1 - score) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def elo(score: float) -> float:
    """The Elo difference a score implies (+inf / -inf at 100% / 0%)."""
    if score >= 1.0:
        return math.inf
    if score <= 0.0:
        return -math.inf
    return -400.0 * math.log10(1.0 / score - 1.0)


def fmt_elo(x: float) -> str:
    if not math.isfinite(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x:+.0f}" if round(x) else "0"


def summarise(points: list[float]) -> dict:
    n = len(points)
    wins, draws = sum(p == 1.0 for p in points), sum(p == 0.5 for p in points)
    score = sum(points) / n if n else 0.0
    lo, hi = wilson(score, n)
    return {"games": n, "wins": wins, "draws": draws, "losses": n - wins - draws, "score": score,
            "score_ci95": [lo, hi], "elo_diff": elo(score), "elo_ci95": [elo(lo), elo(hi)]}


def describe(s: dict) -> str:
    return (f"+{s['wins']} ={s['draws']} -{s['losses']} in {s['games']} games: score {s['score']:.1%} "
            f"(95% CI {s['score_ci95'][0]:.1%}-{s['score_ci95'][1]:.1%}), Elo difference {fmt_elo(s['elo_diff'])} "
            f"(95% CI {fmt_elo(s['elo_ci95'][0])} to {fmt_elo(s['elo_ci95'][1])})")


# -- the command -------------------------------------------------------------------------------
def configure(parser):
    parser.add_argument("run_dir", help="a run of task chess (or chess-mate)")
    parser.add_argument("--opponent", choices=["stockfish", "random"], default="stockfish")
    parser.add_argument("--elo", type=int, default=1320, help="Stockfish's UCI_Elo (clamped to what the engine accepts); 0 = full strength")
    parser.add_argument("--games", type=int, default=10, help="games to play, colours alternating (default 10)")
    parser.add_argument("--movetime", type=float, default=0.05, help="Stockfish's seconds per move (default 0.05)")
    parser.add_argument("--nodes", type=int, default=None, help="Stockfish's nodes per move instead of --movetime")
    parser.add_argument("--stockfish", default=None, help="the Stockfish binary (default: found on PATH)")
    parser.add_argument("--max-plies", type=int, default=400, help="a game still going after this many plies is a draw")
    parser.add_argument("--pgn", default=None, help="where to write the games (default RUN_DIR/play/<opponent>-<time>.pgn)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random mover, the openings and the sampled moves")
    parser.add_argument("--raw", action="store_true",
                        help="always the policy's top legal move (by default a mate in one is taken, and a move that stalemates or repeats a position is passed over)")
    variety_options(parser)
    parser.add_argument("--no-progress", action="store_true")


def variety_options(parser, open_plies: int = 0) -> None:
    """Options that make repeated games differ (``suite play`` and ``suite elo``)."""
    parser.add_argument("--open-plies", type=int, default=open_plies,
                        help=f"start each pair of games (one with each colour) from this many random legal plies (default {open_plies})")
    parser.add_argument("--book", default=None, help="a polyglot opening book (.bin): openings drawn from it, weighted, up to --open-plies plies")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="sample the model's moves from its probabilities ** (1 / T) instead of taking the best (default 0: the best)")


def check_variety(args) -> None:
    if args.open_plies < 0:
        raise suite.SuiteError(f"--open-plies must be 0 or more, not {args.open_plies}")
    if args.temperature < 0:
        raise suite.SuiteError(f"--temperature must be 0 or more, not {args.temperature}")
    if args.book and not Path(args.book).is_file():
        raise suite.SuiteError(f"--book {args.book}: no such file")


def run(args) -> int:
    from suite.progress import counter

    if args.games < 1:
        raise suite.SuiteError(f"--games must be at least 1, not {args.games}")
    check_variety(args)
    model = load_player(args.run_dir)
    if args.opponent == "random":
        opponent = RandomMover(args.seed)
    else:
        opponent = StockfishPlayer(args.stockfish, args.elo, args.movetime, args.nodes)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.pgn) if args.pgn else Path(args.run_dir) / "play" / f"{args.opponent}-{stamp}.pgn"
    out.parent.mkdir(parents=True, exist_ok=True)
    me = f"suite {Path(args.run_dir).name}"
    points: list[float] = []
    try:
        with open(out, "w") as pgn, counter(not args.no_progress) as bar:
            task = bar.add_task(f"vs {opponent.name}", total=args.games)
            rng = random.Random(f"play:{args.seed}")
            opening: list[chess.Move] = []
            for i in range(args.games):
                model_white = i % 2 == 0
                if model_white and (args.open_plies or args.book):  # each opening is played once with each colour
                    opening = random_opening(rng, args.open_plies or 8, args.book)
                game = play_game(model, opponent, model_white, args.max_plies, rules=not args.raw, opening=opening,
                                 temperature=args.temperature, rng=rng)
                game.headers.update({
                    "Event": f"suite play vs {args.opponent}", "Site": "suite", "Round": str(i + 1),
                    "Date": datetime.date.today().strftime("%Y.%m.%d"),
                    "White": me if model_white else opponent.name, "Black": opponent.name if model_white else me,
                })
                print(game, file=pgn, end="\n\n", flush=True)
                points.append(model_points(game, model_white))
                bar.update(task, advance=1, description=f"vs {opponent.name}: {sum(points):g}/{len(points)}")
    finally:
        opponent.close()
    s = summarise(points)
    s.update({"opponent": opponent.name, "pgn": str(out)})
    (out.with_suffix(".json")).write_text(json.dumps(s, indent=2) + "\n")
    print(f"{me} vs {opponent.name}: {describe(s)}")
    print(f"games: {out}")
    return 0
