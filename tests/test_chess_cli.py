"""Chess end to end with the real Stockfish on tiny budgets: generate and train, predict, play a
random mover, play a whole game against Stockfish through `suite uci`, train on a PGN file.

Commands run in-process through `suite.cli.main` (starting the CLI is slow on a busy machine);
`suite uci` runs as the real subprocess a chess GUI would start."""
from __future__ import annotations

import contextlib
import io
import json
import random
import re

import chess
import chess.engine
import chess.pgn
import pytest
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file

import suite
from suite import cli, testing
from suite.plugins.chess.generate import find_stockfish

from conftest import SUITE, TINY, metrics, run_dir_from, run_suite

STOCKFISH = find_stockfish(None)
needs_stockfish = pytest.mark.skipif(STOCKFISH is None, reason="Stockfish is not installed (apt-get install stockfish)")

SMALL_DATA = ["--data.positions", 400, "--data.shard_positions", 200, "--data.nodes", 30, "--data.max_plies", 80,
              "--data.val_percent", 20, "--data.test_percent", 20, "--data.val_size", 100, "--data.test_size", 100,
              "--data.batch_size", 32, "--data.workers", 2]
SHORT = ["--trainer.max_steps", 8, "--trainer.val_check_interval", 4]


def suite_main(*args) -> tuple[int, str, str]:
    """`suite ARGS` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def run_ok(*args) -> str:
    code, out, err = suite_main(*args)
    assert code == 0, f"suite {' '.join(map(str, args))} exited {code}\n{out}\n{err}"
    return out


def on_policy_rounds(out: str) -> tuple[int, list[tuple[int, int, int]]]:
    """A training run's output -> (training positions before the rounds, [(step, positions labelled,
    training positions after) for each on-policy round])."""
    train = int(re.search(r"positions by split \(whole games\): train (\d+)", out)[1])
    return train, [tuple(map(int, m)) for m in re.findall(r"on-policy round \d at step (\d+): .*? labelled its (\d+) positions .*?; (\d+) training", out)]


def eval_batches(run, split: str):
    """(module, the batches of one split) of a finished run, loaded as `suite eval` loads it."""
    from torch.utils.data import DataLoader

    from suite import runs
    from suite.data import SuiteDataModule
    from suite.registry import get_registry

    task, cfg, tokenizer, module = runs.load_run(run, get_registry())
    dm = SuiteDataModule(task, tokenizer, cfg)
    dm.setup()
    return module, DataLoader(dm.datasets[split], batch_size=64, collate_fn=task.collate)


def chance_levels(run) -> dict[str, tuple[float, float]]:
    """{split: (top-1, top-3 accuracy of a uniformly random legal move)}, from each position's legal moves."""
    out = {}
    for split in ("val", "test", "test_mate"):
        n = torch.cat([b["legal"].sum(1) for b in eval_batches(run, split)[1]]).double()
        out[split] = (float((1 / n).mean()), float((n.clamp(max=3) / n).mean()))
    return out


@pytest.fixture(scope="module")
def chess_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chess")
    out = run_ok("train", "--task", "chess", *TINY, *SMALL_DATA, *SHORT, "--data.mate_puzzles", 1000,
                 "--data.cache_dir", tmp / "cache", "--run.root", tmp / "runs")
    return run_dir_from(out), tmp, out


@needs_stockfish
def test_train_generates_cached_shards_and_reports_move_metrics(chess_run):
    run, tmp, out = chess_run
    assert "generating 400 Stockfish-labelled positions (2 shards" in out
    shards = sorted((tmp / "cache").glob("stockfish-*/shard-*.npz"))
    assert len(shards) == 2
    assert "generating 1000 mate-in-one puzzles" in out and len(list((tmp / "cache").glob("mate-in-one-*/chunk-*.json"))) == 1
    m = metrics(run)
    chance = chance_levels(run)
    for split in ("val", "test", "test_mate"):
        assert set(m["splits"][split]) == {"accuracy", "top3_accuracy", "loss"}  # mask_loss: legality is not learned
        s, top3 = m["splits"][split], chance[split][1]
        assert s["accuracy"] <= s["top3_accuracy"], s
        # top-3 above a random legal move's chance; this seed measured val 0.23 (chance 0.14),
        # test 0.43 (0.20), test_mate 0.70 (0.06)
        assert s["top3_accuracy"] > top3, (split, s, top3)
    # top-1 above twice chance where there are enough positions to tell: this seed measured test 0.28
    # (chance 0.08) and test_mate 0.41 (chance 0.02; mate-in-one puzzles are in the training mix)
    for split in ("test", "test_mate"):
        assert m["splits"][split]["accuracy"] > 2 * chance[split][0], (split, m["splits"][split], chance[split])
    assert (run / "weights" / "head.safetensors").is_file()
    # The value task reuses the cached shards (no engine needed) and trains on the outcomes.
    out = run_ok("train", "--task", "chess-value", *TINY, *SMALL_DATA, "--trainer.max_steps", 4,
                 "--trainer.val_check_interval", 4, "--data.stockfish", "/nonexistent/stockfish",
                 "--data.cache_dir", tmp / "cache", "--run.root", tmp / "runs")
    assert "generating" not in out
    assert "accuracy" in metrics(run_dir_from(out))["splits"]["test"]


@needs_stockfish
def test_fresh_search_labels_depend_on_the_position_alone():
    from suite.plugins.chess import generate

    board, fens = chess.Board(), []
    for move in ["e4", "e5", "Nf3", "Nc6", "Bb5", "a6", "Ba4", "Nf6", "O-O", "Be7", "Re1", "b5", "Bb3", "d6", "c3", "O-O"]:
        board.push_san(move)
        fens.append(board.fen())
    fresh = generate.best_moves(STOCKFISH, 300, fens, fresh=True)
    assert generate.best_moves(STOCKFISH, 300, fens[::-1], fresh=True) == fresh[::-1]  # no hash carried between positions
    data = {"nodes": 400, "open_plies": 8, "epsilon": 0.03, "weak_games": 0.6, "weak_epsilon": [0.3, 1.0], "max_plies": 200,
            "shard_positions": 2000, "seed": 0}
    assert generate.settings_of({**data, "fresh_search": False}) == generate.settings_of(data)  # old caches keep their names
    assert generate.cache_dir(data) != generate.cache_dir({**data, "fresh_search": True})


@needs_stockfish
def test_batches_and_tokenizer_keep_the_plugin_contract(chess_run):
    _, tmp, _ = chess_run
    data = {"data.positions": 400, "data.shard_positions": 200, "data.nodes": 30, "data.max_plies": 80,
            "data.val_percent": 20, "data.test_percent": 20, "data.cache_dir": str(tmp / "cache"),
            "data.stockfish": "/nonexistent/stockfish"}  # the cached data of chess_run: no engine needed
    batches = testing.check_batches("chess", {**data, "data.mate_puzzles": 1000})
    assert batches["test"]["legal"].shape == (4, 1968) and batches["test_mate"]["correct"].any()
    assert testing.check_batches("chess-value", data)["train"]["label"].max() <= 2
    assert testing.roundtrip_tokenizer("chess").mirror


@needs_stockfish
def test_predict_prints_a_legal_move_and_rejects_bad_positions(chess_run):
    run = chess_run[0]
    fen = "r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3"
    out = run_ok("predict", run, fen).splitlines()
    uci, san = out[0].split()[0], out[0].split()[1].strip("()")
    board = chess.Board(fen)
    assert chess.Move.from_uci(uci) in board.legal_moves and board.san(chess.Move.from_uci(uci)) == san
    assert len(out) == 6 and out[1].split()[0] == uci
    code, _, err = suite_main("predict", run, "rnbqkbnr/pppppppp/9/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1")
    assert code == 2 and "invalid FEN" in err and len(err.strip().splitlines()) == 1
    code, _, err = suite_main("predict", run, "7k/6Q1/6K1/8/8/8/8/8 b - - 0 1")
    assert code == 2 and "checkmate" in err


@needs_stockfish
def test_play_random_writes_pgn_and_score(chess_run):
    run, tmp, _ = chess_run
    pgn = tmp / "vs-random.pgn"
    out = run_ok("play", run, "--opponent", "random", "--games", 2, "--max-plies", 120, "--pgn", pgn, "--no-progress")
    assert "in 2 games: score" in out and "Elo difference" in out
    with open(pgn) as f:
        games = [chess.pgn.read_game(f), chess.pgn.read_game(f)]
    assert all(g is not None and not g.errors and g.headers["Result"] in ("1-0", "0-1", "1/2-1/2") for g in games)
    assert games[0].headers["White"].startswith("suite") and games[1].headers["Black"].startswith("suite")
    summary = json.loads(pgn.with_suffix(".json").read_text())
    assert summary["games"] == 2 and summary["wins"] + summary["draws"] + summary["losses"] == 2


@needs_stockfish
def test_uci_engine_plays_a_whole_game_against_stockfish(chess_run):
    model = chess.engine.SimpleEngine.popen_uci([SUITE, "uci", str(chess_run[0])], timeout=120)
    stockfish = chess.engine.SimpleEngine.popen_uci(STOCKFISH)
    try:
        assert model.id["name"].startswith("suite chess")
        board = chess.Board()
        while not board.is_game_over(claim_draw=True) and board.ply() < 400:
            engine, limit = (model, chess.engine.Limit(time=5)) if board.turn == chess.WHITE else (stockfish, chess.engine.Limit(nodes=200))
            move = engine.play(board, limit).move
            assert move in board.legal_moves
            board.push(move)
        assert board.is_game_over(claim_draw=True), "an untrained model should not last 400 plies against Stockfish"
    finally:
        model.quit()
        stockfish.quit()


@needs_stockfish
def test_on_policy_rounds_grow_the_training_set_and_a_resumed_run_trains_on_the_same_data(chess_run, tmp_path, monkeypatch):
    _, tmp, _ = chess_run
    args = ["train", "--task", "chess", *TINY, *SMALL_DATA, "--data.mate_puzzles", 0, "--data.on_policy_games", 4,
            "--data.on_policy_from", 0, "--trainer.max_steps", 40, "--trainer.val_check_interval", 20,
            "--run.checkpoint_every", 5, "--data.cache_dir", tmp / "cache", "--run.root", tmp_path]
    out = run_ok(*args, "--run.name", "whole")
    # The first epoch is the training positions in full batches of 32 (about 10); then the policy's
    # positions in 4 games of at most 80 plies join them, and the next epoch is longer.
    train, rounds = on_policy_rounds(out)
    assert 6 <= train // 32 < 20 and len(rounds) == 2 and rounds[0][0] == train // 32 and 4 <= rounds[0][1] <= 4 * 40, out
    assert rounds[0][2] == train + rounds[0][1] and rounds[1][2] == rounds[0][2] + rounds[1][1]
    assert rounds[1][0] == train // 32 + rounds[0][2] // 32

    class Stop(pl.Callback):  # the run dies at step 20, after round 1; its last checkpoint is step 15's
        def on_train_batch_end(self, trainer, *_):
            if trainer.global_step == 20:
                raise suite.SuiteError("stopped by the test")

    from suite.plugins.chess import ChessTask

    own = ChessTask.callbacks
    monkeypatch.setattr(ChessTask, "callbacks", lambda self, cfg: [*own(self, cfg), Stop()])
    code, out, _ = suite_main(*args, "--run.name", "stopped")
    assert code != 0 and "on-policy round 1" in out and "round 2" not in out
    monkeypatch.undo()
    out = run_ok("train", "--resume", tmp_path / "chess" / "stopped", "--no-progress")
    assert "round 1" not in out and f"on-policy round 2 at step {rounds[1][0]}: " in out and f"{rounds[1][2]} training positions" in out
    a, b = metrics(tmp_path / "chess" / "whole"), metrics(tmp_path / "chess" / "stopped")
    assert b["splits"]["test"] == pytest.approx(a["splits"]["test"], abs=1e-6)
    for part in ("backbone", "head"):
        wa = load_file(tmp_path / "chess" / "whole" / "weights" / f"{part}.safetensors")
        wb = load_file(tmp_path / "chess" / "stopped" / "weights" / f"{part}.safetensors")
        assert all(torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0) for k in wa), part


@needs_stockfish
def test_on_policy_rounds_under_ddp_give_every_rank_the_same_positions(chess_run, tmp_path):
    _, tmp, _ = chess_run
    out = run_suite("train", "--task", "chess", *TINY, *SMALL_DATA, "--data.mate_puzzles", 0, "--data.on_policy_games", 4,
                    "--data.on_policy_from", 0, "--trainer.max_steps", 20, "--trainer.val_check_interval", 10,
                    "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", 2,
                    "--data.cache_dir", tmp / "cache", "--run.root", tmp_path, timeout=300).stdout
    train, rounds = on_policy_rounds(out)
    # Each rank takes half of an epoch in batches of 32 (about 5 a rank). Had the ranks' training sets
    # differed after a round, their epochs would differ in length and DDP would hang or fail.
    assert len(rounds) == 2 and rounds[0][0] == train // 2 // 32 and rounds[0][2] == train + rounds[0][1], out
    assert rounds[1][0] == train // 2 // 32 + rounds[0][2] // 2 // 32 and metrics(run_dir_from(out))["world_size"] == 2


def lichess_pgn(games: int, seed: int = 3) -> str:
    """Games as Lichess exports them (headers, clock comments, a variation) and one illegal game."""
    rng, texts = random.Random(seed), []
    for i in range(games):
        board = chess.Board()
        game = chess.pgn.Game()
        game.headers.update({"Event": "Rated Blitz game", "Site": f"https://lichess.org/g{i:07d}", "White": f"w{i}",
                             "Black": f"b{i}", "Result": rng.choice(["1-0", "0-1", "1/2-1/2"]), "WhiteElo": "1650",
                             "BlackElo": "1720", "TimeControl": "180+0", "Termination": "Normal"})
        node = game
        for ply in range(30):
            moves = list(board.legal_moves)
            if not moves:
                break
            move = rng.choice(moves)
            if ply == 3 and len(moves) > 1:  # a side line, which is not trained on
                node.add_variation(next(m for m in moves if m != move)).comment = "[%clk 0:02:58]"
            node = node.add_main_variation(move, comment=f"[%eval 0.{ply % 10}] [%clk 0:02:{59 - ply // 2:02d}]")
            board.push(move)
        texts.append(str(game))
    texts.insert(5, '[Event "broken"]\n[Result "0-1"]\n\n1. e4 Ke7 2. Qh5 Kf9 0-1')
    return "\n\n".join(texts) + "\n"


def test_a_small_pgn_file_trains_on_its_own_games_with_default_splits(tmp_path):
    pgn = tmp_path / "lichess.pgn"
    pgn.write_text(lichess_pgn(25))
    out = run_ok("train", "--task", "chess", *TINY, "--data.pgn", pgn, "--data.batch_size", 32,
                 "--data.cache_dir", tmp_path / "cache", "--trainer.max_steps", 4, "--trainer.val_check_interval", 4,
                 "--run.root", tmp_path / "runs")
    assert "pgn: 25 games, 750 positions" in out and "1 malformed" in out
    assert "mate-in-one" not in out and not (tmp_path / "cache").exists()  # no puzzles unless asked for
    assert "on-policy" not in out  # nor on-policy rounds
    counts = dict(part.split() for part in out.split("positions by split (whole games): ")[1].splitlines()[0].split(", "))
    assert set(counts) == {"train", "val", "test"} and int(counts["train"]) == 750 - int(counts["val"]) - int(counts["test"])
    assert int(counts["val"]) % 30 == 0 and int(counts["val"]) >= 30 and int(counts["test"]) >= 30  # whole games
    # The games are random moves, so no model beats chance here: the test accuracy is instead checked
    # against the run's own weights on the PGN's test positions (best legal move == the game's move).
    run = run_dir_from(out)
    module, batches = eval_batches(run, "test")
    module.eval()
    hits = []
    with torch.no_grad():
        for b in batches:
            picks = module(b).masked_fill(~b["legal"], float("-inf")).argmax(-1)
            hits.append(picks == b["label"])
    hits = torch.cat(hits)
    assert len(hits) == int(counts["test"])  # every test position of the file, none else
    assert metrics(run)["splits"]["test"]["accuracy"] == pytest.approx(hits.float().mean().item(), abs=1e-6)
    # Puzzles only when asked for; then they are mixed into train and held out as test_mate.
    out = run_ok("train", "--task", "chess", *TINY, "--data.pgn", pgn, "--data.batch_size", 32, "--data.mate_puzzles", 1000,
                 "--data.cache_dir", tmp_path / "cache", "--trainer.max_steps", 2, "--trainer.val_check_interval", 2,
                 "--run.root", tmp_path / "runs")
    assert "generating 1000 mate-in-one puzzles" in out and "test_mate" in metrics(run_dir_from(out))["splits"]


def test_a_pgn_file_too_small_to_split_names_its_game_count_and_the_pgn_settings(tmp_path):
    pgn = tmp_path / "two.pgn"
    pgn.write_text(lichess_pgn(2))
    code, _, err = suite_main("train", "--task", "chess", *TINY, "--data.pgn", pgn, "--run.root", tmp_path / "runs")
    errors = [line for line in err.splitlines() if line.startswith("suite: error")]
    assert code == 2 and len(errors) == 1, err
    assert "2 game(s)" in errors[0] and "at least 3 games" in errors[0] and "--data.pgn" in errors[0]
    assert "--data.min_elo" in errors[0] and "--data.positions (" not in errors[0]


def test_no_stockfish_and_no_pgn_is_one_clear_line(tmp_path):
    code, _, err = suite_main("train", "--task", "chess", "--data.stockfish", "/nonexistent/stockfish",
                              "--data.cache_dir", tmp_path / "cache", "--run.root", tmp_path / "runs")
    errors = [line for line in err.splitlines() if line.startswith("suite: error")]
    assert code == 2 and len(errors) == 1
    assert "apt-get install stockfish" in err and "--data.pgn" in err


@needs_stockfish
def test_elo_ladder_prints_an_elo_with_an_interval_and_writes_every_game(chess_run):
    run, tmp, _ = chess_run
    pgn = tmp / "elo.pgn"
    out = run_ok("elo", run, "--levels", "1000,1350", "--games", 2, "--nodes", 1, "--calibration-games", 2,
                 "--movetime", 0.01, "--max-plies", 40, "--workers", 2, "--pgn", pgn, "--no-progress")
    assert "levels 1350" in out  # 1000 is clamped to the engine's lowest UCI_Elo
    assert "6 games against" in out and "on 2 process(es)" in out
    assert "maximum likelihood over 6 games" in out and "95%" in out and "calibration:" in out
    with open(pgn) as f:
        games = [g for g in iter(lambda: chess.pgn.read_game(f), None)]
    assert len(games) == 6 and all(not g.errors for g in games)
    mine = [g for g in games if "suite" in g.headers["White"] + g.headers["Black"]]
    assert len(mine) == 4 and sum(g.headers["White"].startswith("suite") for g in mine) == 2  # colours alternate
    firsts = {tuple(m.uci() for m in list(g.mainline_moves())[:4]) for g in mine}
    assert len(firsts) == 2  # each pair of games shares one random opening; the pairs differ
    summary = json.loads(pgn.with_suffix(".json").read_text())
    assert summary["games"] == 6 and len(summary["elo_ci95"]) == 2 and summary["levels"][0]["rating"] is not None
    code, _, err = suite_main("elo", run, "--levels", "abc", "--no-progress")
    assert code == 2 and "--levels 'abc'" in err


@needs_stockfish
def test_eval_puzzles_scores_a_lichess_file_and_reports_malformed_rows(chess_run):
    run, tmp, _ = chess_run
    from test_chess_eval import HEADER, ROWS

    path = tmp / "lichess_db_puzzle.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n")
    out = run_ok("eval-puzzles", run, "--puzzles", path, "--out", tmp / "puzzles.json")
    assert "skipped 4 malformed row(s) of 6 (first: line 4: bad FEN" in out
    assert "of 2 puzzles" in out and "rating  800-1199" in out and "rating 1600-1999" in out
    report = json.loads((tmp / "puzzles.json").read_text())
    assert report["puzzles"] == 2 and report["malformed"] == 4 and set(report["by_rating"]) == {"800-1199", "1600-1999"}
    (tmp / "junk.csv").write_text(HEADER + ROWS[2] + "\n")
    code, _, err = suite_main("eval-puzzles", run, "--puzzles", tmp / "junk.csv")
    errors = [line for line in err.splitlines() if line.startswith("suite: error")]
    assert code == 2 and len(errors) == 1 and "junk.csv: no puzzles to score (1 row(s), 1 malformed)" in errors[0]


@needs_stockfish
def test_multipv_targets_label_several_moves_and_train(tmp_path):
    out = run_ok("train", "--task", "chess", *TINY, *SMALL_DATA, *SHORT, "--data.positions", 200, "--data.targets", "multipv",
                 "--data.multipv", 3, "--data.mate_puzzles", 0, "--data.cache_dir", tmp_path / "cache", "--run.root", tmp_path / "runs")
    shards = sorted((tmp_path / "cache").glob("stockfish-*/shard-*.npz"))
    assert len(shards) == 1 and json.loads((shards[0].parent / "settings.json").read_text())["multipv"] == 3
    import numpy as np

    z = np.load(shards[0])
    assert z["cand"].shape == (len(z["fen"]), 3) and (z["cand"][:, 0] == z["move"]).mean() > 0.9  # the first line is the best move
    assert np.nanmax(z["win"]) <= 1.0 and np.nanmin(z["win"]) >= 0.0
    assert "accuracy" in metrics(run_dir_from(out))["splits"]["test"]
    code, _, err = suite_main("train", "--task", "chess", "--data.targets", "all", "--data.cache_dir", tmp_path / "c2",
                              "--run.root", tmp_path / "runs")
    assert code == 2 and "data.targets must be best or multipv" in err
