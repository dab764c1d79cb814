"""``suite elo RUN_DIR``: an Elo rating with a 95% interval, from a ladder of games against Stockfish.

The model plays ``--games`` games against Stockfish at each ``UCI_Elo`` level (its strength
limiter; Stockfish 15.1 accepts 1350-2850), colours alternating, each pair of games (one with each
colour) from the same varied opening: random legal plies, or a polyglot book. For models weaker
than the lowest level, ``--nodes N`` adds full-strength Stockfish searching N nodes a move; that
level has no rating of its own, so it also plays ``--calibration-games`` against the lowest
``UCI_Elo`` level and its rating is estimated with the model's.

The rating is the maximum-likelihood estimate under the Elo model (expected score
1 / (1 + 10 ** (-diff / 400)), a draw counting half) with the ``UCI_Elo`` levels as fixed anchors,
fitted with scipy; the 95% interval is the profile-likelihood interval (the ratings whose
likelihood-ratio statistic stays below the chi-squared 95% point), which stays honest when the
model wins or loses every game: the interval is then open on one side.

Games run in parallel, one process per core by default (a ``concurrent.futures`` process pool),
each with its own copy of the model and its own single-threaded Stockfish.
"""
from __future__ import annotations

import datetime
import json
import multiprocessing
import multiprocessing.util
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import chess
import chess.engine
import chess.pgn

import suite

from .generate import cpu_cores, find_stockfish
from .play import check_variety, load_player, model_points, play_game, variety_options
from .policy import random_opening

LOW, HIGH = -1000.0, 4000.0  # the search range of every fitted rating
CALIBRATION = "calibration"


# -- the fit -----------------------------------------------------------------------------------
def expected(diff):
    """Expected score of a player rated ``diff`` above the opponent."""
    import numpy as np

    return 1.0 / (1.0 + np.power(10.0, -np.asarray(diff, dtype=float) / 400.0))


def fit_elo(games: list[tuple[str, str, float]], anchors: dict[str, float], subject: str = "model") -> dict:
    """Maximum-likelihood ratings of the players not in ``anchors``, from (a, b, score of a) games.

    Returns ``subject``'s rating (``elo``) and its 95% profile-likelihood interval (``ci95``; a
    bound is None where the interval reaches the edge of the search range, e.g. after all wins),
    and every fitted rating (``ratings``). Where the interval is open on one side the maximum sits
    at the edge of the search range and means nothing: ``elo`` is then None, and ``elo_bound`` is the
    interval's one bound, ``bound`` its side ("lower" after only wins, "upper" after only losses;
    both None where the interval is closed, or open on both sides)."""
    import numpy as np
    from scipy import optimize, stats

    players = sorted({p for a, b, _ in games for p in (a, b)} - set(anchors))
    if subject not in players:
        raise suite.SuiteError(f"no games of {subject!r} to rate")
    index = {p: i for i, p in enumerate(players)}
    a = [g[0] for g in games]
    b = [g[1] for g in games]
    s = np.array([g[2] for g in games], dtype=float)

    def ratings(x, name):
        return x[index[name]] if name in index else anchors[name]

    def nll(x):
        diff = np.array([ratings(x, p) - ratings(x, q) for p, q in zip(a, b)])
        e = np.clip(expected(diff), 1e-12, 1 - 1e-12)
        return -float(np.sum(s * np.log(e) + (1 - s) * np.log(1 - e)))

    others = [p for p in players if p != subject]
    start = float(np.mean(list(anchors.values()))) if anchors else 1500.0

    def profile(r: float) -> tuple[float, np.ndarray]:
        """The smallest negative log-likelihood with ``subject`` fixed at ``r``."""
        if not others:
            x = np.array([r])
            return nll(x), x

        def f(y):
            x = np.empty(len(players))
            x[index[subject]] = r
            for p, v in zip(others, y):
                x[index[p]] = v
            return nll(x)

        res = optimize.minimize(f, np.full(len(others), start), method="L-BFGS-B", bounds=[(LOW, HIGH)] * len(others))
        return float(res.fun), res.x

    best = optimize.minimize_scalar(lambda r: profile(r)[0], bounds=(LOW, HIGH), method="bounded", options={"xatol": 0.05})
    r_hat, nll_min = float(best.x), float(best.fun)
    limit = stats.chi2.ppf(0.95, 1) / 2.0  # the likelihood-ratio statistic 2 * (nll - nll_min) <= chi2(1) 95%
    gap = lambda r: profile(r)[0] - nll_min - limit  # noqa: E731
    lo = optimize.brentq(gap, LOW, r_hat) if gap(LOW) > 0 else None
    hi = optimize.brentq(gap, r_hat, HIGH) if gap(HIGH) > 0 else None
    x = profile(r_hat)[1]
    if not others:
        fitted = {subject: r_hat}
    else:
        fitted = {subject: r_hat, **{p: float(v) for p, v in zip(others, x)}}
    # An interval open on one side leaves the maximum at the edge of the search range: only the bound counts.
    bound = "lower" if hi is None and lo is not None else "upper" if lo is None and hi is not None else None
    elo_bound = lo if bound == "lower" else hi if bound == "upper" else None
    return {"elo": r_hat if lo is not None and hi is not None else None, "ci95": [lo, hi], "elo_bound": elo_bound,
            "bound": bound, "ratings": fitted, "games": len(games)}


def describe_fit(fit: dict) -> str:
    lo, hi = fit["ci95"]
    if lo is None and hi is None:
        return "no estimate: the games say nothing about the rating"
    if lo is None:
        return f"Elo below {hi:.0f} (95% upper bound; it lost every game that counts, so there is no lower bound)"
    if hi is None:
        return f"Elo above {lo:.0f} (95% lower bound; it won every game that counts, so there is no upper bound)"
    return f"Elo {fit['elo']:.0f} (95% CI {lo:.0f}-{hi:.0f})"


# -- the games, in worker processes ------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(run_dir: str, stockfish: str, movetime: float) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER.clear()
    _WORKER.update(model=load_player(run_dir) if run_dir else None, stockfish=stockfish, movetime=movetime, engines={})
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


def level_name(level: tuple[str, int], engine_name: str) -> str:
    kind, value = level
    return f"{engine_name} UCI_Elo {value}" if kind == "elo" else f"{engine_name} {value} nodes"


# -- the command -------------------------------------------------------------------------------
def configure(parser):
    parser.add_argument("run_dir", help="a run of task chess")
    parser.add_argument("--levels", default="1350,1500,1700",
                        help="Stockfish UCI_Elo levels, comma-separated (clamped to what the engine accepts; default 1350,1500,1700)")
    parser.add_argument("--games", type=int, default=20, help="games per level, colours alternating (default 20)")
    parser.add_argument("--nodes", type=int, default=None,
                        help="add a level below the UCI_Elo range: full-strength Stockfish at this many nodes a move (e.g. 1)")
    parser.add_argument("--calibration-games", type=int, default=None,
                        help="games of the --nodes level against the lowest UCI_Elo level, which rate it (default: --games)")
    parser.add_argument("--movetime", type=float, default=0.1, help="seconds per move of the UCI_Elo levels (default 0.1)")
    parser.add_argument("--stockfish", default=None, help="the Stockfish binary (default: found on PATH)")
    parser.add_argument("--workers", type=int, default=None, help="games played at once (default: one per available core)")
    parser.add_argument("--max-plies", type=int, default=400, help="a game still going after this many plies is a draw")
    parser.add_argument("--pgn", default=None, help="where to write the games (default RUN_DIR/elo/elo-<time>.pgn)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the openings and the sampled moves")
    parser.add_argument("--raw", action="store_true", help="the policy alone, without the one-ply rule checks")
    variety_options(parser, open_plies=4)
    parser.add_argument("--no-progress", action="store_true")


def parse_levels(text: str, option) -> list[int]:
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise suite.SuiteError(f"--levels {text!r}: give UCI_Elo ratings separated by commas, e.g. 1350,1500,1700") from None
    if option is None:
        raise suite.SuiteError("this Stockfish has no UCI_Elo option; use a Stockfish with the strength limiter")
    clamped = sorted({min(max(v, option.min), option.max) for v in levels})
    if clamped != sorted(set(levels)):
        print(f"note: this Stockfish accepts UCI_Elo {option.min}-{option.max}; levels {','.join(map(str, clamped))}")
    return clamped


def make_jobs(args, levels: list[tuple[str, int]], names: dict, me: str) -> list[dict]:
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


def run(args) -> int:
    from suite.progress import counter

    check_variety(args)
    if args.games < 1:
        raise suite.SuiteError(f"--games must be at least 1, not {args.games}")
    if args.nodes is not None and args.nodes < 1:
        raise suite.SuiteError(f"--nodes must be at least 1, not {args.nodes}")
    path = find_stockfish(args.stockfish)
    if path is None:
        raise suite.SuiteError("suite elo needs Stockfish: install it (`apt-get install stockfish`) or give --stockfish PATH")
    load_player(args.run_dir)  # one clear line now if the run does not choose moves
    probe = chess.engine.SimpleEngine.popen_uci(path)
    try:
        engine_name = probe.id.get("name", "Stockfish")
        levels: list[tuple[str, int]] = [("elo", v) for v in parse_levels(args.levels, probe.options.get("UCI_Elo"))]
    finally:
        probe.quit()
    if args.nodes:
        levels.insert(0, ("nodes", args.nodes))
    me = f"suite {Path(args.run_dir).name}"
    names = {lv: level_name(lv, engine_name) for lv in levels}
    jobs = make_jobs(args, levels, names, me)
    workers = max(1, min(args.workers or cpu_cores(), len(jobs)))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.pgn) if args.pgn else Path(args.run_dir) / "elo" / f"elo-{stamp}.pgn"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{len(jobs)} games against {', '.join(names[lv] for lv in levels)} on {workers} process(es); "
          f"UCI_Elo levels at {args.movetime:g} s a move")
    start = time.time()
    results: list[dict] = []
    init = (str(args.run_dir), path, args.movetime)
    with open(out, "w") as pgn, counter(not args.no_progress) as bar:
        task = bar.add_task("elo ladder", total=len(jobs))

        def done(r: dict) -> None:
            results.append(r)
            print(r["pgn"], file=pgn, end="\n\n", flush=True)
            bar.advance(task)

        try:
            if workers == 1:
                _init_worker(*init)
                for job in jobs:
                    done(play_job(job))
            else:
                ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
                with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
                    futures = [pool.submit(play_job, job) for job in jobs]
                    try:
                        for f in as_completed(futures):
                            done(f.result())
                    except BaseException:
                        for f in futures:
                            f.cancel()
                        raise
        except chess.engine.EngineError as e:
            raise suite.SuiteError(f"Stockfish ({path}) failed: {e}") from None
        finally:
            _close_engines()
    results.sort(key=lambda r: r["index"])
    games = [(r["first"], r["second"], r["score"]) for r in results]
    anchors = {names[lv]: float(lv[1]) for lv in levels if lv[0] == "elo"}
    fit = fit_elo(games, anchors, subject=me)
    per_level = []
    for lv in levels:
        scores = [r["score"] for r in results if r["level"] == lv and r["kind"] == "model"]
        n = len(scores)
        per_level.append({"opponent": names[lv], "games": n, "wins": scores.count(1.0), "draws": scores.count(0.5),
                          "losses": scores.count(0.0), "score": sum(scores) / n if n else None,
                          "rating": anchors.get(names[lv], fit["ratings"].get(names[lv]))})
    for row in per_level:
        rating = row["rating"]
        fitted = "" if row["opponent"] in anchors else " (fitted)"
        print(f"  vs {row['opponent']:<32} +{row['wins']} ={row['draws']} -{row['losses']}  score {row['score']:.1%}  "
              f"opponent rated {rating:.0f}{fitted}")
    calibration = [r["score"] for r in results if r["kind"] == CALIBRATION]
    if calibration:
        print(f"  calibration: {results[-1]['first']} vs {results[-1]['second']}: score {sum(calibration) / len(calibration):.1%} "
              f"in {len(calibration)} games")
    summary = {"elo": fit["elo"], "elo_ci95": fit["ci95"], "elo_bound": fit["elo_bound"], "bound": fit["bound"],
               "games": len(results), "levels": per_level,
               "calibration_score": sum(calibration) / len(calibration) if calibration else None,
               "movetime": args.movetime, "open_plies": args.open_plies, "book": args.book, "temperature": args.temperature,
               "raw": args.raw, "engine": engine_name, "seconds": time.time() - start, "pgn": str(out)}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{me}: {describe_fit(fit)}, maximum likelihood over {len(games)} games "
          f"(anchors: {engine_name}'s UCI_Elo, calibrated on CCRL 40/4 engine ratings at 60+0.6 s; see docs/chess.md)")
    print(f"games: {out}")
    return 0

