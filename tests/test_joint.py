"""Joint training (`suite train --task A,B,C`): one backbone, per-task metrics, logs and weights; eval,
predict --task, --init-from into a member task and a new one, DDP, bad input."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from suite.runs import read_parts

from conftest import metrics, run_dir_from, suite_main

HELPERS = Path(__file__).parent / "helpers"
TASKS = "vision,audio,arithmetic"
SMALL = ["--backbone.preset", "tiny", "--no-progress", "--threads", 1, "--data.batch_size", 16,
         "--audio.data.train_size", 96, "--audio.data.val_size", 32, "--audio.data.test_size", 32,
         "--arithmetic.data.val_size", 32, "--arithmetic.data.test_size", 32, "--arithmetic.data.long_digits", "[4, 4]",
         "--backbone.dropout", 0.1, "--optim.schedule", "constant", "--optim.warmup_steps", 4,
         "--trainer.val_check_interval", 12, "--trainer.log_every_n_steps", 4, "--run.checkpoint_every", 12]


def train(capsys, root, *args) -> Path:
    code, out, err = suite_main(capsys, "train", "--task", TASKS, *SMALL, "--run.root", root, *args)
    assert code == 0, err
    return run_dir_from(out)


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory) -> Path:
    from suite import cli

    root = tmp_path_factory.mktemp("joint")
    code = cli.main([str(a) for a in ["train", "--task", TASKS, *SMALL, "--run.root", root, "--run.name", "whole",
                                      "--trainer.max_steps", 24]])
    assert code == 0
    return root / "vision+audio+arithmetic" / "whole"


def test_a_joint_run_writes_metrics_logs_and_weights_per_task(joint_run):
    m = metrics(joint_run)
    assert m["step"] == 24 and [h["step"] for h in m["history"]] == [12, 24]
    assert list(m["tasks"]) == ["vision", "audio", "arithmetic"]
    assert sum(t["steps"] for t in m["tasks"].values()) == 24 and all(t["steps"] > 0 for t in m["tasks"].values())
    assert m["tasks"]["vision"]["mix"] == pytest.approx(1 / 3, abs=1e-5)  # uniform by default
    assert "accuracy" in m["tasks"]["audio"]["splits"]["test"] and "exact_match" in m["tasks"]["arithmetic"]["splits"]["test"]
    assert m["splits"]["vision/test"] == m["tasks"]["vision"]["splits"]["test"]
    assert "arithmetic/accuracy" not in m["history"][0] and "arithmetic/exact_match" in m["history"][0]
    with open(joint_run / "logs" / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert {"train/vision/loss", "train/audio/loss", "train/arithmetic/loss", "val/vision/accuracy", "test/audio/accuracy"} <= set(columns)
    # The backbone is keyed as a single-task run's; each task has its own adapter and head.
    single = torch.load(joint_run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    backbone = load_file(joint_run / "weights" / "backbone.safetensors")
    assert {f"backbone.{k}" for k in backbone} == {k for k in single if k.startswith("backbone.")}
    for task in ("vision", "audio", "arithmetic"):
        assert load_file(joint_run / "weights" / task / "head.safetensors")
    assert set(json.loads((joint_run / "tokenizer.json").read_text())) == {"vision", "audio", "arithmetic"}
    assert (joint_run / "vision" / "test_confusion_matrix.json").is_file()


def test_eval_and_predict_a_joint_run(joint_run, capsys):
    code, out, err = suite_main(capsys, "eval", joint_run, "--no-progress")
    assert code == 0, err
    assert "arithmetic/test_long" in out and "vision/val" in out
    again = metrics(joint_run)["splits"]["vision/test"]["accuracy"]
    assert f"{again:.4f}" in out
    code, out, err = suite_main(capsys, "predict", joint_run, "12+34", "--task", "arithmetic")
    assert code == 0 and out.strip(), err
    code, _, err = suite_main(capsys, "predict", joint_run, "12+34")
    assert code == 2 and "a joint run of vision, audio, arithmetic; say which task with --task NAME" in err
    code, _, err = suite_main(capsys, "predict", joint_run, "12+34", "--task", "chess")
    assert code == 2 and "task 'chess' is not one of this joint run's tasks" in err


def test_a_joint_run_keeps_each_tasks_best_checkpoint(joint_run):
    m = metrics(joint_run)
    assert set(m["best"]) == {"vision", "audio", "arithmetic"}
    for task, best in m["best"].items():
        assert (joint_run / "checkpoints" / f"best-{task}.ckpt").is_file()
        primary = m["tasks"][task]["primary"]
        scored = next(h for h in m["history"] if h["step"] == best["step"])
        values = [h[f"{task}/{primary}"] for h in m["history"]]
        chosen = max(values) if m["tasks"][task]["higher_is_better"] else min(values)
        assert scored[f"{task}/{primary}"] == chosen  # the check with the task's best validation score
        # its weights, evaluated again, score what validation scored
        assert best["splits"]["val"][primary] == pytest.approx(scored[f"{task}/{primary}"], abs=1e-6)
        assert set(best["splits"]) == set(m["tasks"][task]["splits"])


def test_a_task_of_a_joint_run_exports_as_a_single_task_model(joint_run, capsys, tmp_path):
    from suite import get_registry
    from suite.train import evaluate_run

    code, _, err = suite_main(capsys, "export", joint_run, "--out", tmp_path / "x")
    assert code == 2 and "say which task with --task NAME" in err
    code, out, err = suite_main(capsys, "export", joint_run, "--task", "vision", "--out", tmp_path / "vision")
    assert code == 0, err
    exported = json.loads((tmp_path / "vision" / "metrics.json").read_text())
    m = metrics(joint_run)
    assert exported["task"] == "vision" and exported["splits"] == m["tasks"]["vision"]["splits"]
    assert exported["joint"]["tasks"] == ["vision", "audio", "arithmetic"] and exported["best"] == m["best"]["vision"]
    weights = read_parts(tmp_path / "vision")  # whatever the export's layout (core/hf_export.py)
    backbone = load_file(joint_run / "weights" / "backbone.safetensors")
    head = load_file(joint_run / "weights" / "vision" / "head.safetensors")
    assert all(torch.equal(weights["backbone"][k], v) for k, v in backbone.items())
    assert all(torch.equal(weights["head"][k], v) for k, v in head.items())
    results = evaluate_run(tmp_path / "vision", get_registry(), progress=False)  # a single-task model now
    for split, values in m["tasks"]["vision"]["splits"].items():
        assert results[split] == pytest.approx(values, abs=1e-6), split


def test_a_finished_joint_run_continues_with_more_steps(joint_run, capsys, tmp_path):
    import shutil

    run = tmp_path / "more"
    shutil.copytree(joint_run, run)
    code, _, err = suite_main(capsys, "train", "--resume", run, "--trainer.max_steps", 36, "--no-progress")
    assert code == 0, err
    m = metrics(run)
    assert m["step"] == 36 and [h["step"] for h in m["history"]] == [12, 24, 36]


def test_init_from_a_joint_run_into_a_member_task_and_a_new_one(joint_run, capsys, tmp_path):
    code, out, err = suite_main(capsys, "train", "--task", "arithmetic", "--backbone.preset", "tiny", "--no-progress",
                                "--trainer.max_steps", 2, "--data.val_size", 16, "--data.test_size", 16,
                                "--data.long_digits", "[4, 4]", "--init-from", joint_run, "--run.root", tmp_path)
    assert code == 0, err
    assert "newly initialised 0 (task arithmetic: its adapter and head come from the joint run)" in out
    # text defaults to rotary positions; the joint run's are learned, which the new run must state
    code, out, err = suite_main(capsys, "train", "--task", "text", "--backbone.preset", "tiny", "--no-progress",
                                "--backbone.positions", "learned", "--trainer.max_steps", 2, "--trainer.val_check_interval", 2, "--data.max_eval_windows", 3,
                                "--data.batch_size", 4, "--init-from", joint_run, "--run.root", tmp_path)
    assert code == 0, err
    assert "(adapter and head are new)" in out and metrics(run_dir_from(out))["step"] == 2


def test_init_from_a_joint_run_into_a_joint_run_loads_every_part(joint_run, capsys, tmp_path):
    run = train(capsys, tmp_path, "--trainer.max_steps", 2, "--init-from", joint_run, "--mix", "1,0,1")
    m = metrics(run)
    parts = ["backbone.safetensors"] + [f"{n}/{p}.safetensors" for n in ("vision", "audio", "arithmetic") for p in ("adapter", "head")]
    assert m["init"]["loaded"] == sum(len(load_file(joint_run / "weights" / p)) for p in parts)
    assert m["init"]["initialised"] == 0
    assert m["tasks"]["audio"]["steps"] == 0 and m["tasks"]["audio"]["mix"] == 0
    # audio had no batch: its head is the joint run's, untouched
    for name, value in load_file(joint_run / "weights" / "audio" / "head.safetensors").items():
        assert torch.equal(load_file(run / "weights" / "audio" / "head.safetensors")[name], value)


@pytest.mark.parametrize("args, message", [
    (["--task", "vision,nope"], "unknown task 'nope'"),
    (["--task", "vision,arithmetic"], "the tasks share one backbone, but vision uses preset 'tiny' and arithmetic 'small'"),
    (["--task", "vision,audio", "--mix", "1,2,3"], "--mix 1,2,3: 3 weights for 2 tasks (vision, audio)"),
    (["--task", "vision,audio", "--mix", "size:0"], "the temperature after size: must be a positive number"),
    (["--task", "vision", "--mix", "1"], "--mix weighs the tasks of a joint run"),
    (["--task", "vision,vision"], "a task is named twice"),
    (["--task", "vision,audio", "--vision.optim.lr", "1"], "optim is shared by the tasks of a joint run; set --optim.lr"),
])
def test_bad_joint_input_is_one_line_and_exit_2(capsys, args, message):
    code, _, err = suite_main(capsys, "train", *args, "--print-config")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("args, message", [
    (["--task", "vision"], "is a joint run of vision,audio,arithmetic, not vision"),
    (["--task", "audio,vision,arithmetic"], "is a joint run of vision,audio,arithmetic, not audio,vision,arithmetic"),
    (["--config", "x.yaml"], "--config applies to a new run; a resumed run keeps its config.yaml"),
    (["--mix", "1,1,2", "--task", "vision,audio"], "not vision,audio"),
])
def test_a_resumed_joint_run_keeps_its_tasks_and_config(joint_run, capsys, args, message):
    code, _, err = suite_main(capsys, "train", "--resume", joint_run, *args, "--print-config")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_print_config_of_a_joint_run(capsys):
    code, out, err = suite_main(capsys, "train", "--task", "vision,audio", "--mix", "size:2", "--audio.data.train_size", 50,
                                "--data.batch_size", 8, "--print-config")
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load(out)
    assert cfg["joint"] == {"tasks": ["vision", "audio"], "mix": "size:2"}
    assert cfg["tasks"]["audio"]["data"]["train_size"] == 50 and "train_size" not in cfg["tasks"]["vision"]["data"]
    assert cfg["tasks"]["vision"]["data"]["batch_size"] == cfg["tasks"]["audio"]["data"]["batch_size"] == 8


def test_joint_ddp_on_two_cpu_processes(tmp_path):
    args = [sys.executable, HELPERS / "record_samples.py", tmp_path, "train", "--task", "vision,arithmetic",
            "--backbone.preset", "tiny", "--no-progress", "--threads", 1, "--trainer.accelerator", "cpu",
            "--trainer.strategy", "ddp", "--trainer.devices", 2, "--trainer.max_steps", 6,
            "--trainer.val_check_interval", 3, "--data.batch_size", 8, "--arithmetic.data.val_size", 16,
            "--arithmetic.data.test_size", 16, "--arithmetic.data.long_digits", "[4, 4]", "--run.root", tmp_path / "runs"]
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = list((tmp_path / "runs" / "vision+arithmetic").iterdir())
    assert len(runs) == 1, runs
    m = metrics(runs[0])
    assert m["world_size"] == 2 and m["step"] == 6 and set(m["tasks"]) == {"vision", "arithmetic"}
    test_count = sum(map(sum, json.loads((runs[0] / "vision" / "test_confusion_matrix.json").read_text())["rows_true_cols_predicted"]))
    assert test_count == 359  # every test image once over the two ranks
    seen = [json.loads((tmp_path / f"seen-{r}.json").read_text()) for r in (0, 1)]
    assert seen[0] and len(seen[0]) == len(seen[1]) and not set(seen[0]) & set(seen[1])  # each rank its own images


def test_a_joint_run_is_a_transfer_source(capsys, tmp_path):
    code, out, err = suite_main(capsys, "transfer", "--sources", "joint:vision+arithmetic", "--targets", "arithmetic",
                                "--seeds", 0, "--lrs", 0.001, "--freeze", "none", "--preset", "tiny", "--target-steps", 4,
                                "--source-steps", 3, "--evals", 1, "--no-progress", "--out", tmp_path)
    assert code == 0, err
    source = tmp_path / "sources" / "vision+arithmetic" / "joint-vision+arithmetic-tiny-3steps-s0"
    m = metrics(source)
    assert m["step"] == 6 and set(m["tasks"]) == {"vision", "arithmetic"}  # 3 steps for each task
    cells = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert {c["arm"] for c in cells} == {"scratch", "joint:vision+arithmetic/full"}
    code, _, err = suite_main(capsys, "transfer", "--sources", "joint:vision", "--targets", "arithmetic", "--dry-run",
                              "--calibrate-steps", 0, "--out", tmp_path / "bad")
    assert code == 2 and "a joint source names two or more different tasks" in err
