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

Three files, one idea each: ladder.py plays the games, rating.py fits the rating, and this one is
the command (configure, run) and its report (the table, the summary JSON, the rating's line). The
names of the other two that this module had (``fit_elo``, ``play_job``, ...) are still importable from it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import chess
import chess.engine

import suite

from .generate import cpu_cores, find_stockfish
from .ladder import CALIBRATION, Engine, level_name, make_jobs, play_job, play_ladder
from .play import check_variety, load_player, variety_options
from .rating import HIGH, LOW, expected, fit_elo

__all__ = ["CALIBRATION", "Engine", "HIGH", "LOW", "configure", "describe_fit", "expected", "fit_elo", "level_name",
           "load_player", "make_jobs", "parse_levels", "play_job", "play_ladder", "report", "run"]


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
            # This module's play_job and load_player, looked up now: the tests replace them here.
            play_ladder(jobs, workers, init, done, play=play_job, load=load_player)
        except chess.engine.EngineError as e:
            raise suite.SuiteError(f"Stockfish ({path}) failed: {e}") from None
    results.sort(key=lambda r: r["index"])
    report(args, results, levels, names, engine_name, me, out, start)
    return 0


# -- the report ------------------------------------------------------------------------------------
def describe_fit(fit: dict) -> str:
    lo, hi = fit["ci95"]
    if lo is None and hi is None:
        return "no estimate: the games say nothing about the rating"
    if lo is None:
        return f"Elo below {hi:.0f} (95% upper bound; it lost every game that counts, so there is no lower bound)"
    if hi is None:
        return f"Elo above {lo:.0f} (95% lower bound; it won every game that counts, so there is no upper bound)"
    return f"Elo {fit['elo']:.0f} (95% CI {lo:.0f}-{hi:.0f})"


def report(args, results: list[dict], levels: list[tuple[str, int]], names: dict, engine_name: str, me: str, out: Path,
           start: float) -> None:
    """Fit the rating to the ladder's games, print a line a level and the rating, and write the
    summary next to the games (``out`` with the suffix .json)."""
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
