"""suite export: a Hugging Face-style directory that predict, eval and --init-from accept; ONNX
whose outputs match torch's."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from suite import export, runs
from suite.registry import get_registry

from conftest import TINY, metrics, run_dir_from, run_suite, suite_main


@pytest.fixture(scope="module")
def hf_export(arith_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "arithmetic-model"
    run_suite("export", arith_run, "--format", "hf", "--out", out)
    return out


def test_hf_export_holds_config_weights_tokenizer_and_a_model_card(arith_run, hf_export):
    config = json.loads((hf_export / "config.json").read_text())
    # the tiny backbone is GPT-2's blocks: transformers' config and names (tests/test_export_hf.py)
    assert config["task"] == "arithmetic" and config["model_type"] == "gpt2" and config["n_embd"] == 64 and config["n_layer"] == 2
    assert config["suite"]["trainer"]["max_steps"] == 30  # the run's resolved config
    assert "h.0.attn.c_attn.weight" in load_file(hf_export / "model.safetensors")
    weights = runs.read_parts(hf_export)
    for part in runs.PARTS:
        saved = load_file(arith_run / "weights" / f"{part}.safetensors")
        assert weights[part].keys() == saved.keys() and all(torch.equal(weights[part][k], v) for k, v in saved.items())
    assert json.loads((hf_export / "suite_tokenizer.json").read_text()) == json.loads((arith_run / "tokenizer.json").read_text())
    card = (hf_export / "README.md").read_text()
    for heading in ("## Task", "## Data", "## Settings", "## Metrics", "## How to load"):
        assert heading in card
    m = metrics(arith_run)
    for split in ("val", "test", "test_add3", "test_long"):
        assert f"| {split} | {m['splits'][split]['exact_match']:.4f} |" in card
    assert "max_digits:" in card and "steps: 30" in card and "suite predict THIS_DIR" in card


def test_predict_and_eval_on_the_export_give_the_runs_answers(arith_run, hf_export, capsys):
    for problem in ("123+456", "7-9"):
        assert suite_main(capsys, "predict", hf_export, problem)[1] == suite_main(capsys, "predict", arith_run, problem)[1]
    code, out, _ = suite_main(capsys, "eval", hf_export, "--no-progress")
    assert code == 0 and f"{metrics(arith_run)['splits']['test_long']['loss']:.4f}" in out


def test_init_from_an_export(hf_export, tmp_path, capsys):
    code, out, err = suite_main(capsys, "train", "--task", "arithmetic", *TINY, "--init-from", hf_export,
                                "--freeze", "backbone", "--trainer.max_steps", 2, "--trainer.val_check_interval", 2,
                                "--data.val_size", 8, "--data.test_size", 8, "--run.root", tmp_path)
    assert code == 0, err
    source = runs.read_parts(hf_export, ("backbone",))["backbone"]
    assert f"init-from export {hf_export}" in out and f"loaded {len(source)} tensors, skipped 0" in out
    after = load_file(run_dir_from(out) / "weights" / "backbone.safetensors")
    assert all(torch.equal(source[k], v) for k, v in after.items())  # frozen: as exported


def test_export_errors_are_one_line(arith_run, tmp_path, capsys):
    code, _, err = suite_main(capsys, "export", tmp_path, "--out", tmp_path / "x")
    assert code == 2 and "not a run directory" in err and len(err.strip().splitlines()) == 1
    code, _, err = suite_main(capsys, "export", arith_run, "--out", arith_run)
    assert code == 2 and "must not overwrite the run directory" in err


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    proc = run_suite("train", "--task", "vision", *TINY, "--trainer.max_steps", 4, "--trainer.val_check_interval", 4,
                     "--trainer.limit_val_batches", 1, "--trainer.limit_test_batches", 1, "--run.root", root)
    return run_dir_from(proc.stdout)


@pytest.mark.parametrize("which", ["arith_run", "vision_run"])
def test_onnx_matches_torch_within_1e4_at_other_batch_sizes(which, request, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    run = request.getfixturevalue(which)
    code, out, err = suite_main(capsys, "export", run, "--format", "onnx", "--out", tmp_path)
    assert code == 0, err
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    task, cfg, tokenizer, module = runs.load_run(run, get_registry())
    module.eval()
    names = [i.name for i in session.get_inputs()]
    assert names[0] == "inputs" and session.get_inputs()[0].shape[0] == "batch"
    for n in (1, 5):  # the export saw a batch of 2
        batch = export.model_inputs(export.example_batch(task, tokenizer, cfg, n=n))
        with torch.no_grad():
            expected = module(batch).numpy()
        got = session.run(None, {k: batch[k].numpy() for k in names})[0]
        assert got.shape == expected.shape and got.shape[0] == n
        assert abs(got - expected).max() < 1e-4
