"""The CLI end to end on tiny budgets: train, eval, predict, resume, init-from, errors."""
import re

import pytest
import torch
import yaml
from safetensors.torch import load_file


from conftest import TINY, metrics, run_dir_from, run_suite, suite_main


def test_train_writes_a_complete_run_directory(arith_run):
    for path in ("config.yaml", "tokenizer.json", "checkpoints/last.ckpt", "weights/backbone.safetensors",
                 "weights/adapter.safetensors", "weights/head.safetensors", "metrics.json", "logs/metrics.csv"):
        assert (arith_run / path).is_file(), path
    m = metrics(arith_run)
    assert m["step"] == 30 and m["primary"] == "exact_match"
    assert set(m["splits"]) == {"val", "test", "test_add3", "test_long", "test_xlong"}
    assert [h["step"] for h in m["history"]] == [15, 30]  # no sanity-check validation at step 0
    # checkpoints/best.ckpt holds the best validation check; its metrics are recorded when it is not the last step
    assert (arith_run / "checkpoints/best.ckpt").is_file() and m["best"]["step"] in (15, 30)
    best_val = max(h["exact_match"] for h in m["history"])
    assert m["best"]["splits"]["val"]["exact_match"] == pytest.approx(best_val)  # the run's own when best is last
    assert set(m["best"]["splits"]) == set(m["splits"])
    cfg = yaml.safe_load((arith_run / "config.yaml").read_text())
    assert cfg["task"] == "arithmetic" and cfg["trainer"]["max_steps"] == 30 and cfg["backbone"]["d_model"] == 64
    # split by prefix: nothing but backbone tensors in backbone.safetensors
    assert all(k.startswith(("blocks.", "pos_emb", "ln_f")) for k in load_file(arith_run / "weights/backbone.safetensors"))


def test_eval_reproduces_the_metrics_of_the_run(arith_run):
    out = run_suite("eval", arith_run, "--no-progress").stdout
    saved = metrics(arith_run)["splits"]["test_long"]["loss"]
    assert f"{saved:.4f}" in out and "test_add3" in out


def test_predict_answers_a_problem_with_a_number(arith_run, capsys):
    out = run_suite("predict", arith_run, "123+456").stdout.strip()  # the real command once; in-process below
    # a non-empty answer of the form of a sum of two 3-digit numbers: 1 to 4 digits, no sign, nothing
    # else (the 30-step run answers "11": a number, not yet the right one)
    assert re.fullmatch(r"\d{1,4}", out), repr(out)
    code, again, _ = suite_main(capsys, "predict", arith_run, "123 + 456 =")
    assert code == 0 and again.strip() == out


@pytest.mark.parametrize("bad", ["12a+4", "", "1+", "+-"])
def test_predict_rejects_malformed_problems_in_one_line(arith_run, bad, capsys):
    code, _, err = suite_main(capsys, "predict", arith_run, bad)
    assert code == 2
    assert err.strip().startswith("suite: error:") and len(err.strip().splitlines()) == 1
    assert "is not a problem" in err


def test_resume_continues_with_the_same_step_count(arith_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(arith_run, run)
    proc = run_suite("train", "--resume", run, "--trainer.max_steps", 40, "--no-progress")
    assert run_dir_from(proc.stdout) == run
    assert metrics(run)["step"] == 40
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 40
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_steps"] == 40


def test_init_from_with_frozen_backbone_loads_counts_and_keeps_weights(arith_run, tmp_path):
    proc = run_suite("train", "--task", "arithmetic", *TINY, "--init-from", arith_run, "--freeze", "backbone",
                     "--trainer.max_steps", 10, "--trainer.val_check_interval", 10,
                     "--data.val_size", 32, "--data.test_size", 32, "--run.root", tmp_path)
    source = load_file(arith_run / "weights/backbone.safetensors")
    assert f"loaded {len(source)} tensors, skipped 0" in proc.stdout
    new = run_dir_from(proc.stdout)
    after = load_file(new / "weights/backbone.safetensors")
    assert all(torch.equal(source[k], after[k]) for k in source)  # frozen: unchanged by training
    assert not torch.equal(load_file(arith_run / "weights/head.safetensors")["out.weight"],
                           load_file(new / "weights/head.safetensors")["out.weight"])  # the head is new
    assert metrics(new)["init"]["loaded"] == len(source)


def test_init_from_a_run_of_another_preset_is_a_clear_error(arith_run, tmp_path, capsys):
    code, _, err = suite_main(capsys, "train", "--task", "arithmetic", "--backbone.preset", "small",
                              "--init-from", arith_run, "--run.root", tmp_path)
    assert code == 2
    assert "preset 'tiny'" in err and "--backbone.preset tiny" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["train", "--task", "nope"], "unknown task 'nope'"),
    (["train", "--task", "arithmetic", "--optim.lrr", "1"], "did you mean --optim.lr"),
    (["train", "--task", "arithmetic", "--init-from", "no-such-thing"], "not a run directory and not a weight source"),
    (["eval", "/nonexistent/run"], "not a run directory"),
    (["train", "--task", "arithmetic", "--data.ops", "/"], "data.ops must be made of"),
    (["train", "--task", "vision", "--optim.lr", "abc"], "suite: error: optim.lr: 'abc' is not a float"),
    (["train", "--task", "vision", "--data.batchsize", "8"], "did you mean --data.batch_size?"),
])
def test_bad_input_is_one_line_and_non_zero(tmp_path, args, message, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = suite_main(capsys, *args)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_print_config_shows_the_resolved_settings(capsys):
    code, out, _ = suite_main(capsys, "train", "--task", "arithmetic", "--trainer.max_steps", 7, "--print-config")
    cfg = yaml.safe_load(out)
    assert cfg["trainer"]["max_steps"] == 7 and cfg["backbone"]["n_layers"] == 4 and cfg["data"]["ops"] == "+-"


def test_help_lists_the_commands():
    out = run_suite("--help").stdout
    for command in ("train", "eval", "predict", "plugins", "tasks", "new-plugin", "--disable-plugin NAME"):
        assert command in out


def test_train_help_lists_the_shared_settings_and_the_tasks_own(capsys):
    with pytest.raises(SystemExit):
        suite_main(capsys, "train", "--help")
    out = capsys.readouterr().out
    assert "--optim.lr LR         peak learning rate (type: float, default: 0.001)" in out
    assert "--run.logger" in out and "--trainer.max_steps" in out and "--task T --help adds the settings" in out
    assert "--data.ops" not in out
    with pytest.raises(SystemExit):
        suite_main(capsys, "train", "--task", "arithmetic", "--help")
    out = capsys.readouterr().out
    assert "settings of a run of task arithmetic" in out
    assert "operand lengths of the test_long split" in out and "(type: list[int], default: [4, 5])" in out
    assert "default: small" in out and "(type: int, default: 128)" in out  # the task's own defaults
    code, _, err = suite_main(capsys, "train", "--task", "nope", "--help")
    assert code == 2 and "unknown task 'nope'" in err
