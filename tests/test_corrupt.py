"""Damaged files. Every file suite reads back (a run directory's files, a transfer output's cells, a
transfer profile) that is truncated, corrupt or of another version is one line naming it and exit
status 2; a damaged cell is run again and a damaged cache made again, each with a warning naming
the file. Every file suite writes is written whole or not at all."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load, load_file, save_file

from suite import runs
from conftest import run_suite, suite_main


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path):
    path.write_bytes(b"\x00\xff\xfe garbage \x13\x37" * 8)


def writer(text: str):
    def damage(path):
        path.write_text(text)
    return damage


def other_model(path):  # a whole safetensors file, of another model
    save_file({"layer.weight": torch.zeros(2, 2)}, str(path))


# file kind -> (its path in the run directory, {damage: how}, the commands that read it)
RUN = "RUN"
EVAL, PREDICT = ["eval", RUN, "--no-progress"], ["predict", RUN, "12+3"]
EXPORT = ["export", RUN, "--out", "EXPORT"]
RESUME = ["train", "--resume", RUN, "--trainer.max_steps", 31, "--no-progress", "--threads", 1]
INIT = ["train", "--task", "arithmetic", "--init-from", RUN, "--backbone.preset", "tiny", "--trainer.max_steps", 1,
        "--run.root", "NEW", "--no-progress", "--threads", 1]
KINDS = {
    "tokenizer": ("tokenizer.json", {"truncate": truncate, "garbage": garbage, "other version": writer('{"version": 9}'),
                                     "missing key": writer("{}"), "not an object": writer("[1, 2]")},
                  [EVAL, PREDICT, EXPORT, RESUME]),
    "metrics": ("metrics.json", {"truncate": truncate, "garbage": garbage, "missing key": writer('{"task": "arithmetic"}')},
                [RESUME, EXPORT]),
    "config": ("config.yaml", {"truncate": truncate, "garbage": garbage, "missing key": writer("seed: 0\n"),
               "not a mapping": writer("[1, 2]\n"), "bad section": writer("task: arithmetic\nbackbone: 5\n")},
               [EVAL, PREDICT, EXPORT, RESUME, INIT]),
    "backbone weights": ("weights/backbone.safetensors", {"truncate": truncate, "garbage": garbage, "other model": other_model},
                         [EVAL, PREDICT, EXPORT, INIT]),
    "head weights": ("weights/head.safetensors", {"truncate": truncate, "garbage": garbage, "other model": other_model},
                     [EVAL, PREDICT, EXPORT]),
}
CASES = [(kind, damage) for kind, (_, damages, _) in KINDS.items() for damage in damages]


def damaged_copy(arith_run, tmp_path, name: str, damage):
    run = tmp_path / "run"
    shutil.copytree(arith_run, run)
    damage(run / name)
    return run


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("suite: error: "), err
    return lines[0]


@pytest.mark.parametrize("kind, damage", CASES, ids=[f"{k}-{d}" for k, d in CASES])
def test_a_damaged_run_file_is_one_line_naming_it(kind, damage, arith_run, tmp_path, capsys):
    name, damages, commands = KINDS[kind]
    run = damaged_copy(arith_run, tmp_path, name, damages[damage])
    for command in commands:
        args = [{RUN: run, "EXPORT": tmp_path / "export", "NEW": tmp_path / "new"}.get(a, a) for a in command]
        code, _, err = suite_main(capsys, *args)
        line = one_error_line(err)
        assert code == 2, (command, err)
        # --init-from names the run and its backbone when its tensors have no place; everything else the file
        assert str(run / name) in line or (command is INIT and f"run {run} " in line and "backbone tensors" in line), (command, line)


def test_the_command_exits_2_with_one_line_on_stderr(arith_run, tmp_path):
    run = damaged_copy(arith_run, tmp_path, "tokenizer.json", truncate)
    proc = run_suite("eval", run, "--no-progress", check=False)
    assert proc.returncode == 2, proc.stderr
    assert one_error_line(proc.stderr) == (f"suite: error: {run}/tokenizer.json: not valid JSON (truncated or corrupt at "
                                           f"line 2 column 15); {runs.DAMAGED}")


def test_damaged_weights_and_metrics_name_the_command_that_writes_them_again(arith_run, tmp_path, capsys):
    run = damaged_copy(arith_run, tmp_path, "weights/head.safetensors", truncate)
    (run / "metrics.json").write_text("{")
    code, _, err = suite_main(capsys, "eval", run, "--no-progress")
    assert code == 2 and f"`suite train --resume {run}` writes the weights again" in err
    resume = ["train", "--resume", run, "--trainer.max_steps", 30, "--no-progress", "--threads", 1]
    code, _, err = suite_main(capsys, *resume)
    assert code == 2 and f"delete it and run `suite train --resume {run}`, which writes it again" in err
    (run / "metrics.json").unlink()
    code, _, err = suite_main(capsys, *resume)  # as the lines say: both are written again
    assert code == 0, err
    assert runs.read_metrics(run)["step"] == 30 and runs.read_parts(run)["head"]


# -- writing -----------------------------------------------------------------------------------------------
def test_a_write_that_fails_leaves_the_previous_file(tmp_path):
    path = tmp_path / "metrics.json"
    runs.write_json(path, {"step": 1})
    with pytest.raises(RuntimeError):
        with runs.atomic(path) as tmp:
            tmp.write_text('{"step": ')
            raise RuntimeError("killed while writing")
    assert json.loads(path.read_text()) == {"step": 1} and list(tmp_path.iterdir()) == [path]


def test_a_run_directory_holds_no_temporary_files(arith_run):
    assert not [p for p in arith_run.rglob("*") if p.name.endswith(".tmp")]


# -- a transfer output: damaged cells are run again ----------------------------------------------------------
MATRIX = ["transfer", "--sources", "arithmetic", "--targets", "arithmetic", "--seeds", 0, "--lrs", 0.001, "--preset", "tiny",
          "--target-steps", 2, "--source-steps", 2, "--evals", 1, "--executor", "local", "--no-progress"]
CELL = "cells/arithmetic__scratch__lr0.001__s0.json"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """The smallest matrix: one scratch cell of two steps (arithmetic is its own only source, skipped)."""
    from suite import cli

    out = tmp_path_factory.mktemp("matrix")
    assert cli.main([str(a) for a in [*MATRIX, "--out", out]]) == 0
    return out


def older(path):  # a cell written before the summary read its curve and raw score
    record = json.loads(path.read_text())
    del record["curve"], record["raw_test"]
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("damage", [truncate, garbage, older], ids=["truncate", "garbage", "older format"])
def test_a_damaged_or_older_cell_is_run_again_with_a_warning(damage, matrix, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(matrix, out)
    damage(out / CELL)
    code, stdout, err = suite_main(capsys, *MATRIX, "--dry-run", "--calibrate-steps", 0, "--out", out)
    assert code == 0 and f"{out / CELL}: " in err and "its run is trained again" in err, err
    code, stdout, err = suite_main(capsys, *MATRIX, "--out", out)
    assert code == 0, err
    assert "0 already finished, 1 to go" in stdout
    warnings = err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(f"suite: warning: {out / CELL}: "), err
    record = json.loads((out / CELL).read_text())
    assert record["curve"] and record["raw_test"] == json.loads((out / "results.json").read_text())["runs"][0]["raw_test"]
    code, stdout, err = suite_main(capsys, *MATRIX, "--out", out)  # whole again: done
    assert code == 0 and "1 already finished, 0 to go" in stdout and not err, err


# -- a transfer profile: every value's type is checked before anything trains ---------------------------------
@pytest.mark.parametrize("text, message", [
    ("reference: {arithmetic: 0.8x}", "reference.arithmetic: '0.8x' is not a run directory or a positive test score"),
    ("reference: {arithmetic: .nan}", "reference.arithmetic: nan is not a run directory or a positive test score"),
    ("reference: {arithmetic: [0.8]}", "reference.arithmetic: [0.8] is not a run directory or a positive test score"),
    ("reference: 0.8", "reference: 0.8 is not a mapping"),
    ("preset: 5", "preset: 5 is not a string"),
    ("sources: [1, chess]", "sources: 1 is not a name"),
    ("task_overrides: {arithmetic: 5}", "task_overrides.arithmetic: 5 is not a mapping of settings"),
    ("overrides: [1]", "overrides: [1] is not a mapping"),
    ("skip_self: maybe", "skip_self: 'maybe' is not true or false"),
    ("resources: 4", "resources: 4 is not a mapping"),
    ("lrs: [0.001, abc]", "lrs: 'abc' is not a number"),
])
def test_a_profile_value_of_the_wrong_type_is_one_line_before_anything_trains(text, message, tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(text + "\n")
    code, _, err = suite_main(capsys, "transfer", "--profile", "quick", "--config", exp, "--out", tmp_path / "out",
                              "--no-progress")
    line = one_error_line(err)
    assert code == 2 and message in line, line
    assert not (tmp_path / "out").exists()


def test_a_reference_is_a_number_or_a_path(tmp_path, capsys):
    from suite import transfer

    exp = transfer.load_experiment("quick", None, {"reference": {"arithmetic": "0.8", "vision": str(tmp_path / "nowhere")}})
    assert exp["reference"] == {"arithmetic": 0.8, "vision": str(tmp_path / "nowhere")}  # a path is read for the report
    code, _, err = suite_main(capsys, "transfer", "--reference", "arithmetic=85%", "--dry-run", "--calibrate-steps", 0,
                              "--out", tmp_path)
    assert code == 2 and "--reference: reference.arithmetic: '85%' is not a run directory or a positive test score" in err


# -- caches: made again, with a warning naming the file ------------------------------------------------------
@pytest.mark.parametrize("damage", [truncate, garbage, writer('{"fen": ["x"]}')], ids=["truncate", "garbage", "not a chunk"])
def test_a_damaged_mate_in_one_chunk_is_made_again(damage, tmp_path, capsys):
    from suite.plugins.chess.mate import cached_mate_positions

    whole = cached_mate_positions(6, 0, tmp_path, chunk=3, progress=False)
    chunks = sorted(tmp_path.glob("mate-in-one-3/chunk-*.json"))
    assert len(chunks) == 2
    capsys.readouterr()
    damage(chunks[0])
    again = cached_mate_positions(6, 0, tmp_path, chunk=3, progress=False)
    err = capsys.readouterr().err
    assert f"suite: warning: {chunks[0]}: damaged mate-in-one cache" in err and err.count("warning") == 1, err
    assert again.fen == whole.fen and again.correct == whole.correct and again.game == whole.game


@pytest.mark.skipif(shutil.which("stockfish") is None and not os.path.exists("/usr/games/stockfish"),
                    reason="Stockfish is not installed (make setup installs it)")
@pytest.mark.parametrize("damage", [truncate, garbage], ids=["truncate", "garbage"])
def test_a_damaged_stockfish_shard_is_generated_again(damage, tmp_path, capsys):
    from suite import testing
    from suite.plugins.chess.generate import stockfish_positions

    data = testing.resolve("chess", {"data.positions": 40, "data.shard_positions": 20, "data.nodes": 10,
                                     "data.max_plies": 40, "data.workers": 1, "data.cache_dir": str(tmp_path)})["data"]
    whole = stockfish_positions(data, progress=False)
    shards = sorted(tmp_path.glob("stockfish-*/shard-*.npz"))
    assert len(shards) == 2
    capsys.readouterr()
    damage(shards[1])
    again = stockfish_positions(data, progress=False)
    err = capsys.readouterr().err
    assert f"suite: warning: {shards[1]}: damaged cache shard" in err and err.count("warning") == 1, err
    assert again.fen == whole.fen and again.move == whole.move and again.game == whole.game


def test_a_mate_in_one_chunk_of_an_older_version_still_loads(tmp_path, capsys):
    from suite.plugins.chess.mate import cached_mate_positions

    whole = cached_mate_positions(3, 0, tmp_path, chunk=3, progress=False)
    chunk = next(tmp_path.glob("mate-in-one-3/chunk-*.json"))
    d = json.loads(chunk.read_text())
    chunk.write_text(json.dumps({"fen": d["fen"], "correct": d["correct"]}))  # before puzzles had a game key
    capsys.readouterr()
    again = cached_mate_positions(3, 0, tmp_path, chunk=3, progress=False)
    assert again.fen == whole.fen and not capsys.readouterr().err


AUDIO = ["train", "--task", "audio", "--backbone.preset", "tiny", "--trainer.max_steps", 1, "--trainer.val_check_interval", 1,
         "--data.train_size", 32, "--data.val_size", 8, "--data.test_size", 8, "--no-progress", "--threads", 1]


@pytest.fixture(scope="module")
def audio_cache(tmp_path_factory):
    """The chord feature cache of AUDIO's settings, made by a run: (its path, its bytes)."""
    from suite import cli

    cache = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        assert cli.main([str(a) for a in [*AUDIO, "--run.root", cache / "runs"]]) == 0
    path = next((cache / "suite" / "audio").glob("chords-*.safetensors"))
    return path, path.read_bytes()


@pytest.mark.parametrize("damage", [truncate, garbage], ids=["truncate", "garbage"])
def test_a_damaged_audio_feature_cache_is_made_again(damage, audio_cache, tmp_path, monkeypatch, capsys):
    path, whole = audio_cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(path.parents[2]))
    damaged = tmp_path / path.name
    damaged.write_bytes(whole)
    damage(damaged)
    os.replace(damaged, path)  # a new file: this process still maps the features it read from the old one
    code, out, err = suite_main(capsys, *AUDIO, "--run.root", tmp_path)
    assert code == 0, err
    assert f"suite: warning: {path}: damaged audio feature cache" in err and "computed again" in err, err
    rebuilt, before = load_file(str(path)), load(whole)  # the same features, written whole
    assert rebuilt.keys() == before.keys() and all(torch.allclose(rebuilt[k].float(), v.float(), atol=1e-2) for k, v in before.items())
