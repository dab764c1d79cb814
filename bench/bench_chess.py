"""Chess throughput: Stockfish-labelled positions per second per core, tokenisation positions per second.

    .venv/bin/python bench/bench_chess.py [--positions 1000] [--nodes 400] [--json out.json]

Generation runs one single-threaded engine process (one core) on the default data settings
(configs/tasks/chess.yaml) into a temporary cache, once with ``data.fresh_search`` (every position
searched from an empty hash) and once without, and reports labelled positions/s for that core;
`suite train --task chess` runs one such process per core. Tokenisation encodes FENs as the data
loader does (and boards, and legal-move lists as the evaluation splits need). Wall-clock numbers:
on a shared machine they fall with the load, which is printed alongside.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import chess
import torch

from suite.config import configs_dir, load_yaml
from suite.plugins.chess.generate import find_stockfish, generate_shard, settings_of
from suite.plugins.chess.tokenizer import ChessTokenizer


def sample_fens(n: int, seed: int = 0) -> list[str]:
    rng, board, fens = random.Random(seed), chess.Board(), []
    while len(fens) < n:
        if board.is_game_over() or board.ply() > 120:
            board = chess.Board()
        fens.append(board.fen())
        board.push(rng.choice(list(board.legal_moves)))
    return fens


def rate(fn, items) -> float:
    start = time.perf_counter()
    for x in items:
        fn(x)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=1000, help="positions to generate for the generation figure")
    ap.add_argument("--nodes", type=int, default=None, help="Stockfish nodes per position (default: the chess task's)")
    ap.add_argument("--tokenise", type=int, default=20000, help="positions to tokenise")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    results = {"load_average": os.getloadavg()[0], "cores": os.cpu_count()}
    data = load_yaml(configs_dir().joinpath("tasks", "chess.yaml"))["data"]
    data.update(shard_positions=args.positions, seed=12345)
    if args.nodes:
        data["nodes"] = args.nodes
    engine = find_stockfish(None)
    if engine is None:
        print("generation: skipped, Stockfish not found (apt-get install stockfish)")
    else:
        results["generation"] = {}
        for fresh in (True, False):  # data.fresh_search on and off, one after the other: their ratio holds under load
            with tempfile.TemporaryDirectory() as tmp:
                start, cpu = time.perf_counter(), time.process_time()
                n = generate_shard(engine, settings_of({**data, "fresh_search": fresh}), 0, Path(tmp) / "shard.npz")
                wall = time.perf_counter() - start
            kind = "fresh_search" if fresh else "game_search"
            results["generation"][kind] = {"nodes": data["nodes"], "positions": n, "seconds": round(wall, 1),
                                           "positions_per_s_per_core": round(n / wall, 1),
                                           "python_cpu_s": round(time.process_time() - cpu, 1)}
            print(f"generation ({kind}): {n} positions labelled by {engine} at nodes={data['nodes']} in {wall:.1f}s "
                  f"= {n / wall:.0f} positions/s on one core (one engine process)")
        g = results["generation"]
        g["fresh_over_game_time"] = round((g["fresh_search"]["seconds"] / g["fresh_search"]["positions"])
                                          / (g["game_search"]["seconds"] / g["game_search"]["positions"]), 2)
        print(f"fresh_search costs {g['fresh_over_game_time']:.2f} times the time a position of game_search")

    tok = ChessTokenizer()
    fens = sample_fens(args.tokenise)
    boards = [chess.Board(f) for f in fens]
    r_fen = rate(tok.encode, fens)
    r_board = rate(tok.encode, boards)
    r_legal = rate(tok.legal_ids, boards[: max(1, len(boards) // 4)])
    start = time.perf_counter()
    stacked = torch.from_numpy(__import__("numpy").stack([tok.encode(f) for f in fens]))
    r_batch = len(fens) / (time.perf_counter() - start)
    r_attacks = rate(ChessTokenizer(attacks=True).encode, fens)
    r_checks = rate(ChessTokenizer(attacks=True, checks=True).encode, fens)
    r_counts = rate(ChessTokenizer(attacks=True, checks=True, counts=True).encode, fens)
    results["tokenisation"] = {"fen_per_s": round(r_fen), "board_per_s": round(r_board), "legal_moves_per_s": round(r_legal),
                               "fen_to_tensor_per_s": round(r_batch), "fen_with_attacks_per_s": round(r_attacks),
                               "fen_with_attacks_and_checks_per_s": round(r_checks),
                               "fen_with_counts_and_checks_per_s": round(r_counts), "tokens": int(stacked.shape[1])}
    print(f"tokenisation: {r_fen:,.0f} FEN/s, {r_board:,.0f} boards/s, {r_batch:,.0f} FEN/s into one tensor; "
          f"{r_attacks:,.0f} FEN/s with attack tokens (data.attacks), {r_checks:,.0f} with check tokens as well (data.checks), "
          f"{r_counts:,.0f} with attackers counted too (data.attack_counts, the default); "
          f"legal-move ids {r_legal:,.0f} positions/s (one core, {stacked.shape[1]} tokens per position)")
    print(f"load average {results['load_average']:.1f} on {results['cores']} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
