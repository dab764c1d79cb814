"""Every built-in task, and a joint run, is the same run whole or killed with SIGKILL and resumed:
the same weights and every metric, to 1e-6 on CPU.

The killed run is the real `suite` command in a subprocess, choosing its own CPU threads; the
whole run is told that count (float32 sums come out in another order with another count), and
the resumed run, given no `--threads`, must take it from the checkpoint itself."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import SUITE, metrics, run_dir_from, suite_main

STEPS, EVERY, VAL = 24, 8, 12
COMMON = ["--backbone.preset", "tiny", "--no-progress", "--backbone.dropout", 0.1, "--trainer.max_steps", STEPS,
          "--run.checkpoint_every", EVERY, "--trainer.val_check_interval", VAL, "--optim.warmup_steps", 4]
CHESS_DATA = ["--data.positions", 400, "--data.shard_positions", 200, "--data.nodes", 30, "--data.max_plies", 80,
              "--data.val_percent", 20, "--data.test_percent", 20, "--data.val_size", 64, "--data.test_size", 64,
              "--data.batch_size", 16]
EVAL_64 = ["--data.val_size", 64, "--data.test_size", 64]

CASES = {
    # the moving average of the weights starts before the kill: it is part of the state
    "arithmetic": [*EVAL_64, "--data.long_digits", "[4, 4]", "--optim.ema_decay", 0.9, "--optim.ema_from", 4],
    # on-policy rounds from step 0: the first round falls after the first epoch of about 12 batches
    "chess": [*CHESS_DATA, "--data.mate_puzzles", 0, "--data.on_policy_games", 2, "--data.on_policy_from", 0],
    "chess-value": CHESS_DATA,
    "chess-mate": ["--data.positions", 300, "--data.val_percent", 10, "--data.test_percent", 10, "--data.val_size", 64,
                   "--data.test_size", 64, "--data.batch_size", 32, "--data.workers", 1],
    "vision": ["--data.batch_size", 32],
    "audio": ["--data.train_size", 256, "--data.val_size", 64, "--data.test_size", 64, "--data.batch_size", 16],
    "text": ["--data.files", "{tmp}/text.txt", "--data.block_size", 32, "--data.chunk_chars", 200,
             "--data.holdout_percent", 40, "--data.batch_size", 8],
    "text-classify": ["--data.files", "{tmp}/reviews.csv", "--data.text_column", "review", "--data.label_column",
                      "sentiment", "--data.holdout_percent", 40, "--data.max_tokens", 32, "--data.batch_size", 8],
    # sequence to sequence, on the tiny encoder-decoder: decoding (greedy at validation, beam at test) is in the metrics
    "translate": ["--backbone.preset", "transformer-tiny", "--data.dictionary", "none", "--data.max_digits", 3,
                  "--data.long_digits", "[4, 4]", "--data.val_size", 32, "--data.test_size", 32, "--data.vocab_size", 300,
                  "--data.batch_size", 16],
    "speech-to-text": ["--backbone.preset", "transformer-tiny", "--data.train_size", 64, "--data.val_size", 16,
                       "--data.test_size", 16, "--data.batch_size", 8],
    "vision,audio,arithmetic": ["--data.batch_size", 16, "--audio.data.train_size", 96, "--audio.data.val_size", 32,
                                "--audio.data.test_size", 32, "--arithmetic.data.val_size", 32,
                                "--arithmetic.data.test_size", 32, "--arithmetic.data.long_digits", "[4, 4]"],
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Small local files for the text tasks, and the chess tasks' cache (made by the first chess run)."""
    tmp = tmp_path_factory.mktemp("resume-data")
    words = "the quick brown fox jumps over a lazy dog while seven wizards box nimbly and quietly".split()
    (tmp / "text.txt").write_text("\n\n".join(" ".join(words[(i * j) % len(words)] for j in range(60)) for i in range(40)))
    rows = [(f"{'good fine lovely' if i % 2 else 'bad dull awful'} film number {i}", "pos" if i % 2 else "neg") for i in range(80)]
    (tmp / "reviews.csv").write_text("review,sentiment\n" + "".join(f"{t},{y}\n" for t, y in rows))
    return tmp


def kill_after_first_checkpoint(args: list, run_dir) -> int:
    """Start `suite ARGS`, SIGKILL it once checkpoints/last.ckpt exists; the checkpoint's step."""
    proc = subprocess.Popen([SUITE, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not ckpt.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert ckpt.is_file(), f"no checkpoint was written: {err[-2000:]}"
    assert not (run_dir / "metrics.json").exists(), "the run finished before it could be killed"
    return torch.load(ckpt, weights_only=False)["global_step"]


def test_every_task_has_a_resume_case():
    from suite.registry import get_registry

    assert set(get_registry().all_tasks()) <= {t for case in CASES for t in case.split(",")}


@pytest.mark.parametrize("task", list(CASES))
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_same_weights_and_metrics(task, tmp_path, capsys, data_dir):
    extra = ["--data.cache_dir", data_dir / "chess"] if task.startswith("chess") else []
    case = [str(a).format(tmp=data_dir) for a in CASES[task]]
    assert_resumes_exactly(["train", "--task", task, *COMMON, *case, *extra, "--run.root", tmp_path], task, tmp_path, capsys)


METHODS = ["frozen", "fpt", "lora", "bitfit", "orca", "orca+lora"]  # full: every case above


def test_every_adaptation_method_has_a_resume_case():
    from suite.adapt import METHODS as ALL

    assert set(ALL) <= {"full", *METHODS}


@pytest.mark.parametrize("method", METHODS)
def test_every_adaptation_method_resumes_exactly(method, arith_run, tmp_path, capsys):
    """From a trained run (ORCA: aligned to its arithmetic features first), LoRA with dropout on its input."""
    args = ["train", "--task", "vision", *COMMON, *CASES["vision"], "--init-from", arith_run, "--adapt", method,
            "--adapt.lora_dropout", 0.1, "--adapt.orca_steps", 10, "--run.root", tmp_path]
    assert_resumes_exactly(args, "vision", tmp_path, capsys)
    if method.startswith("orca"):  # the align stage's figures, written before the kill, are the resumed run's
        a, b = (metrics(tmp_path / "vision" / name)["adapt"] for name in ("killed", "whole"))
        a["align"].pop("seconds"), b["align"].pop("seconds")
        assert a == b and a["align"]["after"] < a["align"]["before"]


def assert_resumes_exactly(args: list, task: str, tmp_path, capsys) -> None:
    folder = tmp_path / task.replace(",", "+")
    killed = folder / "killed"
    step = kill_after_first_checkpoint([*args, "--run.name", "killed"], killed)
    assert 0 < step < STEPS
    threads = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)["suite"]["threads"]
    code, out, err = suite_main(capsys, *args, "--run.name", "whole", "--threads", threads)
    assert code == 0, err
    whole = run_dir_from(out)
    code, out, err = suite_main(capsys, "train", "--resume", killed, "--no-progress")
    assert code == 0, err
    assert f"threads {threads} " in out  # the count of the run it continues, not this moment's idle cores
    a, b = metrics(whole), metrics(killed)
    assert b["step"] == STEPS and [h["step"] for h in b["history"]] == [VAL, 2 * VAL]
    for ha, hb in zip(a["history"], b["history"]):
        assert hb == pytest.approx(ha, abs=1e-6)
    assert set(b["splits"]) == set(a["splits"]) and a["splits"]
    for split in a["splits"]:
        assert b["splits"][split] == pytest.approx(a["splits"][split], abs=1e-6), split
    # best.ckpt (a joint run: best-<task>.ckpt each) holds the weights its validation scored (with a
    # moving average, the average's)
    bests = b["best"] if "," in task else {"": b["best"]}
    assert b["best"] == a["best"] and len(bests) == len(task.split(","))
    for name, best in bests.items():
        prefix = f"{name}/" if name else ""
        scored = next(h for h in b["history"] if h["step"] == best["step"])
        scored = {k[len(prefix):]: v for k, v in scored.items() if k.startswith(prefix) and k != "step"}
        assert scored == pytest.approx(best["splits"]["val"], abs=1e-6)
    files = sorted(p.relative_to(whole) for p in (whole / "weights").rglob("*.safetensors"))
    assert files and files == sorted(p.relative_to(killed) for p in (killed / "weights").rglob("*.safetensors"))
    for f in files:
        wa, wb = load_file(whole / f), load_file(killed / f)
        assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6, rtol=0) for k in wa), f
