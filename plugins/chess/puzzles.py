"""``suite eval-puzzles RUN_DIR --puzzles FILE.csv``: the solve rate on puzzles in the Lichess format.

The Lichess puzzle database (https://database.lichess.org/#puzzles) is a CSV file, plain or
compressed (.zst as published, .gz, .bz2), with the columns

    PuzzleId,FEN,Moves,Rating,RatingDeviation,Popularity,NbPlays,Themes,GameUrl,OpeningTags

(a header line, or none). ``FEN`` is the position before the opponent's move; ``Moves`` are UCI
moves, the first the opponent's, then the solver's and the opponent's replies in turn. The model
must find every one of its own moves; as on Lichess, a move that mates at once counts even where
it differs from the listed one. The model plays its policy's most likely legal move (no rule
checks, no search). Rows that cannot be a puzzle (too few columns, a bad FEN, an illegal or
unreadable move, a rating that is not a number) are counted and skipped.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import chess

import suite

from .pgn import open_text
from .play import load_player
from .policy import top_moves

COLUMNS = ["PuzzleId", "FEN", "Moves", "Rating", "RatingDeviation", "Popularity", "NbPlays", "Themes", "GameUrl", "OpeningTags"]


@dataclass
class Puzzle:
    id: str
    board: chess.Board  # after the opponent's first move: the solver to move
    solution: list[chess.Move]  # the solver's moves and the opponent's replies, in turn
    rating: int


@dataclass
class PuzzleFile:
    puzzles: list[Puzzle] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # "line N: reason"
    rows: int = 0


def parse_row(row: list[str], where: dict[str, int]) -> Puzzle:
    """One CSV row -> a puzzle; ValueError with the reason otherwise."""
    if len(row) <= max(where.values()):
        raise ValueError(f"{len(row)} columns, expected at least {max(where.values()) + 1}")
    pid, fen, moves, rating = (row[where[k]].strip() for k in ("PuzzleId", "FEN", "Moves", "Rating"))
    try:
        board = chess.Board(fen)
    except ValueError as e:
        raise ValueError(f"bad FEN {fen!r} ({e})") from None
    if not board.is_valid():
        raise ValueError(f"FEN {fen!r} is not a legal position")
    try:
        rating_value = int(float(rating))
    except ValueError:
        raise ValueError(f"rating {rating!r} is not a number") from None
    ucis = moves.split()
    if len(ucis) < 2:
        raise ValueError(f"Moves {moves!r}: needs the opponent's move and at least one move to find")
    line, probe = [], board.copy(stack=False)
    for uci in ucis:
        try:
            move = chess.Move.from_uci(uci)
        except ValueError:
            raise ValueError(f"unreadable move {uci!r}") from None
        if move not in probe.legal_moves:
            raise ValueError(f"illegal move {uci} in {probe.fen()}")
        probe.push(move)
        line.append(move)
    board.push(line[0])
    return Puzzle(pid, board, line[1:], rating_value)


def read_puzzles(path: Path, limit: int | None = None, min_rating: int | None = None, max_rating: int | None = None) -> PuzzleFile:
    """The puzzles of a Lichess-format CSV file (plain, .gz, .bz2, .zst), malformed rows counted."""
    if not path.is_file():
        raise suite.SuiteError(f"--puzzles {path}: no such file")
    out = PuzzleFile()
    where = {name: i for i, name in enumerate(COLUMNS)}
    try:
        with open_text(path) as stream:
            for number, row in enumerate(csv.reader(stream), start=1):
                if not row or not "".join(row).strip():
                    continue
                if number == 1 and row[0].strip().lstrip("\ufeff") == "PuzzleId":  # a header: columns by name
                    header = [c.strip().lstrip("\ufeff") for c in row]
                    missing = [c for c in ("PuzzleId", "FEN", "Moves", "Rating") if c not in header]
                    if missing:
                        raise suite.SuiteError(f"{path}: line 1: the header lacks the column(s) {', '.join(missing)}")
                    where = {name: header.index(name) for name in ("PuzzleId", "FEN", "Moves", "Rating")}
                    continue
                out.rows += 1
                try:
                    puzzle = parse_row(row, where)
                except ValueError as e:
                    out.malformed.append(f"line {number}: {e}")
                    continue
                if (min_rating is not None and puzzle.rating < min_rating) or (max_rating is not None and puzzle.rating > max_rating):
                    continue
                out.puzzles.append(puzzle)
                if limit is not None and len(out.puzzles) >= limit:
                    break
    except (OSError, EOFError, csv.Error) as e:
        raise suite.SuiteError(f"{path}: cannot read the puzzle file: {e}") from None
    return out


def solve(model, puzzles: list[Puzzle], batch_size: int = 256) -> list[bool]:
    """Whether the model solves each puzzle. All puzzles advance together, one move of the solver
    at a time, so the policy runs in batches."""
    boards = [p.board.copy() for p in puzzles]
    step = [0] * len(puzzles)  # index into the solution of the solver's next move
    solved: list[bool | None] = [None] * len(puzzles)
    while True:
        active = [i for i, s in enumerate(solved) if s is None]
        if not active:
            return [bool(s) for s in solved]
        for i, move in zip(active, top_moves(model, [boards[i] for i in active], batch_size)):
            board, line = boards[i], puzzles[i].solution
            expected = line[step[i]]
            board.push(move)
            if board.is_checkmate():
                solved[i] = True
            elif move != expected:
                solved[i] = False
            elif step[i] + 1 >= len(line):
                solved[i] = True
            else:
                board.push(line[step[i] + 1])  # the opponent's reply
                step[i] += 2
                if step[i] >= len(line) or board.is_game_over():
                    solved[i] = True


def bucket_of(rating: int, width: int) -> str:
    low = rating // width * width
    return f"{low}-{low + width - 1}"


def configure(parser):
    parser.add_argument("run_dir", help="a run of task chess")
    parser.add_argument("--puzzles", required=True, help="a CSV file in the Lichess puzzle format (plain, .gz, .bz2 or .zst)")
    parser.add_argument("--limit", type=int, default=None, help="score at most this many puzzles (the first in the file)")
    parser.add_argument("--min-rating", type=int, default=None, help="only puzzles rated at least this")
    parser.add_argument("--max-rating", type=int, default=None, help="only puzzles rated at most this")
    parser.add_argument("--bucket", type=int, default=400, help="width of the rating buckets in the report (default 400)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", default=None, help="the JSON report (default RUN_DIR/puzzles/<file>-<time>.json)")


def run(args) -> int:
    if args.bucket < 1 or (args.limit is not None and args.limit < 1):
        raise suite.SuiteError("--bucket and --limit must be at least 1")
    path = Path(args.puzzles)
    model = load_player(args.run_dir)
    data = read_puzzles(path, args.limit, args.min_rating, args.max_rating)
    skipped = len(data.malformed)
    if skipped:
        print(f"{path}: skipped {skipped} malformed row(s) of {data.rows} (first: {data.malformed[0]})")
    if not data.puzzles:
        raise suite.SuiteError(f"{path}: no puzzles to score ({data.rows} row(s), {skipped} malformed"
                               + (", the rest outside --min-rating/--max-rating" if data.rows > skipped else "") + ")")
    start = time.time()
    results = solve(model, data.puzzles, args.batch_size)
    buckets: dict[str, list[int]] = {}
    for p, ok in sorted(zip(data.puzzles, results), key=lambda x: x[0].rating):
        b = buckets.setdefault(bucket_of(p.rating, args.bucket), [0, 0])
        b[0] += ok
        b[1] += 1
    n, hits = len(results), sum(results)
    print(f"{Path(args.run_dir).name} on {path.name}: solved {hits} of {n} puzzles ({hits / n:.1%}); "
          f"{skipped} malformed row(s) skipped; {time.time() - start:.1f}s")
    for name, (ok, total) in buckets.items():
        print(f"  rating {name:>9}: {ok:>6} of {total:<6} {ok / total:6.1%}")
    report = {"file": str(path), "puzzles": n, "solved": hits, "solve_rate": hits / n, "malformed": skipped,
              "malformed_rows": data.malformed[:100],
              "by_rating": {k: {"puzzles": t, "solved": o, "solve_rate": o / t} for k, (o, t) in buckets.items()},
              "failed": [p.id for p, ok in zip(data.puzzles, results) if not ok][:1000]}
    out = Path(args.out) if args.out else Path(args.run_dir) / "puzzles" / f"{path.name.split('.')[0]}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {out}")
    return 0
