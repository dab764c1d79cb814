"""Experiment loggers (--logger) and the table of runs (suite runs)."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml

from suite import loggers, runs
from suite.errors import SuiteError

from conftest import TINY, metrics, run_dir_from, run_suite, suite_main

SHORT = [*TINY, "--trainer.max_steps", 4, "--trainer.val_check_interval", 2, "--trainer.log_every_n_steps", 1,
         "--data.val_size", 16, "--data.test_size", 16]


def test_tensorboard_logger_writes_an_event_file_in_the_run_directory(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, out, err = suite_main(capsys, "train", "--task", "arithmetic", *SHORT, "--logger", "csv,tensorboard",
                                "--run.root", tmp_path)
    assert code == 0, err
    run = run_dir_from(out)
    assert list((run / "logs").glob("events.out.tfevents.*"))
    assert (run / "logs" / "metrics.csv").is_file()  # csv as well: several loggers at once
    events = EventAccumulator(str(run / "logs"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "val/exact_match", "test/exact_match"} <= set(scalars)
    final = events.Scalars("test/exact_match")[-1].value
    assert final == pytest.approx(metrics(run)["splits"]["test"]["exact_match"])
    assert yaml.safe_load((run / "config.yaml").read_text())["run"]["logger"] == "csv,tensorboard"


def test_wandb_offline_and_mlflow_file_store(tmp_path):
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    proc = run_suite("train", "--task", "arithmetic", *SHORT, "--logger", "wandb,mlflow", "--run.root", tmp_path,
                     env={"WANDB_SILENT": "true"})
    run = run_dir_from(proc.stdout)
    assert list((run / "logs" / "wandb").glob("offline-run-*/run-*.wandb"))  # offline: nothing leaves the machine
    [metric_file] = (run / "logs" / "mlruns").glob("*/*/metrics/test/exact_match")
    value = float(metric_file.read_text().split()[1])
    assert value == pytest.approx(metrics(run)["splits"]["test"]["exact_match"])
    assert not (run / "logs" / "metrics.csv").exists()  # only the loggers asked for


def test_unknown_logger_is_one_line_with_a_suggestion(tmp_path, capsys):
    code, _, err = suite_main(capsys, "train", "--task", "arithmetic", "--logger", "csv,tensorbord",
                              "--run.root", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--logger tensorbord: not a logger" in err and "did you mean tensorboard?" in err
    assert not list(tmp_path.iterdir())  # nothing was started


def test_a_logger_whose_package_is_missing_names_the_extra(monkeypatch):
    real = loggers.importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    with pytest.raises(SuiteError, match=r"--logger wandb needs the wandb package: pip install 'suite\[wandb\]'"):
        loggers.logger_names("csv,wandb")
    assert loggers.logger_names("csv,tensorboard,csv") == ["csv", "tensorboard"]


def test_a_run_directory_of_an_older_version_loads_for_resume_eval_predict_and_init_from(arith_run, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(arith_run, old)
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    del cfg["run"]["logger"], cfg["data"]["epoch_size"]  # settings added since the run was made
    cfg["optim"]["old_knob"], cfg["data"]["gone"] = 1, 2  # settings a later version dropped
    (old / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert runs.read_config(old)["run"]["logger"] == "csv"
    code, _, err = suite_main(capsys, "train", "--resume", old, "--trainer.max_steps", 32, "--logger", "tensorboard",
                              "--no-progress")
    assert code == 0, err
    assert "optim.old_knob is no longer a setting; ignored" in err and "data.gone is no longer a setting" in err
    assert metrics(old)["step"] == 32 and list((old / "logs").glob("events.out.tfevents.*"))
    (old / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))  # the old file again
    for args in (["predict", old, "12+3"], ["eval", old, "--no-progress"],
                 ["train", "--task", "arithmetic", "--init-from", old, "--backbone.preset", "tiny", "--print-config"]):
        code, out, err = suite_main(capsys, *args)
        assert code == 0 and out, err
    assert yaml.safe_load(out)["init"]["from"] == str(old)


def _fake_run(root, task, name, mtime, **files):
    run = root / task / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"task: {task}\n")
    for file, text in files.items():
        (run / file.replace("_", ".")).write_text(text)
    os.utime(run / "config.yaml", (mtime, mtime))
    return run


def test_runs_lists_the_runs_of_a_directory_newest_first(tmp_path, capsys):
    finished = {"task": "vision", "step": 300, "train_seconds": 75.2, "primary": "accuracy",
                "splits": {"val": {"accuracy": 0.91}, "test": {"accuracy": 0.875}, "test_hard": {"accuracy": 0.5}}}
    _fake_run(tmp_path, "vision", "20260101-120000", 1_000_000, metrics_json=json.dumps(finished))
    _fake_run(tmp_path, "vision", "20260102-120000", 3_000_000)
    _fake_run(tmp_path, "chess", "20260103-120000", 2_000_000, error_txt="NonFiniteLoss")
    (tmp_path / "transfer" / "quick").mkdir(parents=True)  # not a run directory: left out
    lines = suite_main(capsys, "runs", "--root", tmp_path)[1].splitlines()
    assert lines[0].split()[:5] == ["run", "task", "date", "steps", "time"]
    assert [l.split()[0] for l in lines[1:]] == ["vision/20260102-120000", "chess/20260103-120000", "vision/20260101-120000"]
    assert "unfinished" in lines[1] and "failed" in lines[2]
    assert lines[3].split()[4:] == ["300", "1", "min", "15", "s", "accuracy", "0.9100", "0.8750", "test_hard=0.5000"]
    only = suite_main(capsys, "runs", "--root", tmp_path, "--task", "chess")[1].splitlines()
    assert len(only) == 2 and only[1].startswith("chess/")


def test_runs_of_a_real_run_and_a_missing_root(arith_run, capsys):
    code, out, _ = suite_main(capsys, "runs", "--root", arith_run.parent.parent)
    m = metrics(arith_run)
    assert code == 0 and f"arithmetic/{arith_run.name}" in out
    assert f"{m['splits']['test']['exact_match']:.4f}" in out and "exact_match" in out
    code, _, err = suite_main(capsys, "runs", "--root", arith_run / "nope")
    assert code == 2 and "no such directory" in err
