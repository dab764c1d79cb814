"""`suite export --format hf` where the backbone is a transformers model (BERT, GPT-2, Llama):
transformers' AutoModel loads the directory and, given the adapter's output, returns the backbone's
hidden states; the export still loads wherever a run directory does, and so do exports in suite's
own layout (other backbones, earlier versions)."""
from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import suite
from suite import export, hf_export, runs
from suite.cli import main
from suite.registry import get_registry

from conftest import metrics, suite_main

transformers = pytest.importorskip("transformers")

QUICK = ["--backbone.preset", "tiny", "--trainer.max_steps", 2, "--no-progress", "--threads", 1]
TEXT = ["--task", "text", "--data.corpus", "[pydoc_topics]", "--data.max_eval_windows", 8]
RUNS = {  # family -> the settings of a run whose backbone is that transformers model
    "bert": ["--task", "text-classify", "--backbone.norm", "post", "--backbone.embed_norm", "true",
             "--backbone.final_norm", "false"],  # and the labelled file below
    "gpt2": [*TEXT, "--backbone.positions", "learned", "--backbone.activation", "gelu_tanh"],
    "llama": [*TEXT, "--backbone.norm_type", "rms", "--backbone.mlp", "gated", "--backbone.activation", "silu",
              "--backbone.bias", "false", "--backbone.positions", "rotary", "--backbone.n_kv_heads", 2],
    "qwen2": [*TEXT, "--backbone.norm_type", "rms", "--backbone.mlp", "gated", "--backbone.activation", "silu",
              "--backbone.bias", "false", "--backbone.qkv_bias", "true", "--backbone.positions", "rotary",
              "--backbone.rope_scaling", json.dumps({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64})],
    "suite": [*TEXT, "--backbone.positions", "rotary"],  # pre-LN LayerNorm blocks with rotary positions: no transformers model
}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Texts of 2 to 12 words in two classes: batches with padding."""
    path = tmp_path_factory.mktemp("data") / "labelled.csv"
    words = (["one", "two", "three"], ["alpha", "beta", "gamma", "delta"])
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["text", "label"])
        for i in range(80):
            out.writerow([" ".join(words[i % 2][(i * 7 + j) % len(words[i % 2])] for j in range(2 + i % 11)), "ab"[i % 2]])
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, labelled):
    """family -> (run directory, its export), each trained and exported once, through the CLI."""
    made = {}

    def make(family):
        if family not in made:
            root = tmp_path_factory.mktemp(family)
            extra = ["--data.files", f"[{labelled}]"] if family == "bert" else []
            assert main([str(a) for a in ["train", *RUNS[family], *extra, *QUICK, "--run.root", root, "--run.name", "run"]]) == 0
            run = next(root.glob("*/run"))
            assert main(["export", str(run), "--format", "hf", "--out", str(root / "export")]) == 0
            made[family] = run, root / "export"
        return made[family]
    return make


def hidden_states(run, out, batch_size=4):
    """(suite's backbone, transformers' model) on a real batch, the adapter's output and its padding;
    returns both (B, T, d) and the padding (True at padding)."""
    task, cfg, tokenizer, module = runs.load_run(run, get_registry())
    module.eval()
    model = transformers.AutoModel.from_pretrained(out).eval()
    batch = export.example_batch(task, tokenizer, cfg, n=batch_size)
    with torch.no_grad():
        x = module.adapter(batch["inputs"])
        padding = batch.get("padding")
        if padding is None:  # and with padding: the last third of the first sample
            padding = torch.zeros(x.shape[:2], dtype=torch.bool)
            padding[0, 2 * x.shape[1] // 3:] = True
        mask = (~padding).long()
        ours = module.backbone(x, module.mask, padding=padding)
        theirs = model(inputs_embeds=x, attention_mask=mask).last_hidden_state
        by_ids = model(input_ids=batch["inputs"], attention_mask=mask).last_hidden_state  # the adapter's table is the word table
    return ours, theirs, by_ids, padding


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "qwen2"])
def test_automodel_loads_the_export_and_returns_the_backbones_hidden_states(family, exported):
    run, out = exported(family)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == family and config["suite"]["task"] == config["task"]
    assert set(load_file(out / "suite_parts.safetensors")) == {f"{p}.{k}" for p in ("adapter", "head")
                                                               for k in runs.read_parts(run)[p]}
    ours, theirs, by_ids, padding = hidden_states(run, out)
    assert type(transformers.AutoModel.from_pretrained(out)).__name__ == hf_export.ARCHITECTURES[family]
    tokens = ~padding  # padded positions are nobody's output
    assert padding.any() and tokens.any()
    diff = (ours - theirs)[tokens].abs().max().item()
    print(f"{family}: max |suite - transformers| = {diff:.2e}")
    assert diff < 1e-4
    assert (ours - by_ids)[tokens].abs().max().item() < 1e-4
    # read back: the same tensors as the run's
    for part, state in runs.read_parts(out).items():
        saved = runs.read_parts(run, (part,))[part]
        assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved), part


def test_the_export_evaluates_to_the_runs_metrics(exported, capsys):
    run, out = exported("bert")
    code, printed, err = suite_main(capsys, "eval", out, "--no-progress")
    assert code == 0, err
    for split, values in metrics(run)["splits"].items():
        assert f"{split} " in printed and all(f"{v:.4f}" in printed for v in values.values())


def test_the_model_card_has_the_hubs_metadata_and_the_metrics(exported):
    run, out = exported("bert")
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["library_name"] == "transformers" and {"suite", "text", "text-classify", "bert"} <= set(header["tags"])
    (entry,) = header["model-index"]
    results = {r["dataset"]["split"]: r for r in entry["results"]}
    for split, values in metrics(run)["splits"].items():
        r = results[split]
        assert r["task"]["type"] == "text-classification" and r["dataset"]["name"]
        assert {m["type"]: m["value"] for m in r["metrics"]} == pytest.approx(values)
        assert all(m["name"] == f"{split} {m['type']}" for m in r["metrics"])
    for heading in ("## Task", "## Data", "## Settings", "## Metrics", "## How to load"):
        assert heading in card
    assert "`BertModel`" in card and "AutoModel.from_pretrained" in card


def test_a_backbone_no_transformers_model_has_keeps_suites_layout_and_says_why(exported, capsys):
    run, out = exported("suite")
    assert json.loads((out / "config.json").read_text())["model_type"] == "suite"
    assert not (out / "suite_parts.safetensors").exists()
    assert all(k.split(".")[0] in runs.PARTS for k in load_file(out / "model.safetensors"))
    card = (out / "README.md").read_text()
    assert "no transformers model has this backbone's blocks" in card and "positions learned (here rotary)" in card
    assert yaml.safe_load(card.split("---\n")[1])["library_name"] == "suite"
    assert runs.read_parts(out)["backbone"].keys() == runs.read_parts(run)["backbone"].keys()
    code, _, err = suite_main(capsys, "eval", out, "--no-progress")
    assert code == 0, err


def test_an_export_in_the_layout_of_earlier_versions_still_loads(exported, tmp_path, capsys):
    run, _ = exported("bert")
    old = tmp_path / "old-export"
    old.mkdir()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    b = cfg["backbone"]
    (old / "config.json").write_text(json.dumps({
        "model_type": "suite", "architectures": ["SuiteModule"], "task": cfg["task"], "domain": "text",
        "hidden_size": b["d_model"], "num_hidden_layers": b["n_layers"], "num_attention_heads": b["n_heads"],
        "intermediate_size": b["d_ff"], "max_position_embeddings": b["max_len"], "suite": cfg}))
    save_file({f"{part}.{k}": v for part in runs.PARTS for k, v in load_file(run / "weights" / f"{part}.safetensors").items()},
              str(old / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(run / "tokenizer.json", old / "suite_tokenizer.json")
    shutil.copy(run / "metrics.json", old / "metrics.json")
    for part, state in runs.read_parts(old).items():
        saved = runs.read_parts(run, (part,))[part]
        assert all(torch.equal(state[k], saved[k]) for k in saved) and state.keys() == saved.keys()
    code, printed, err = suite_main(capsys, "eval", old, "--no-progress")
    assert code == 0, err
    assert all(f"{v:.4f}" in printed for v in metrics(run)["splits"]["test"].values())
    task, cfg2, tokenizer, module = suite.load_run(old, get_registry())
    assert cfg2["task"] == "text-classify"


def test_a_prefix_mask_is_given_to_the_transformers_model_as_a_4d_mask(arith_run, tmp_path, capsys):
    """Arithmetic's prefix attention, which GPT-2 does not apply by itself: the card says to pass it."""
    code, _, err = suite_main(capsys, "export", arith_run, "--out", tmp_path / "export")
    assert code == 0, err
    assert "4-D boolean `attention_mask`" in (tmp_path / "export" / "README.md").read_text()
    task, cfg, tokenizer, module = runs.load_run(arith_run, get_registry())
    module.eval()
    model = transformers.AutoModel.from_pretrained(tmp_path / "export").eval()
    batch = export.example_batch(task, tokenizer, cfg, n=4)
    with torch.no_grad():
        x = module.adapter(batch["inputs"])
        kw = {k: batch.get(k) for k in ("prefix_len", "padding")}
        ours = module.backbone(x, "prefix", **kw)
        mask = suite.attention_mask("prefix", x.shape[1], **kw)
        theirs = model(inputs_embeds=x, attention_mask=mask.expand(x.shape[0], -1, -1, -1)).last_hidden_state
    assert (ours - theirs).abs().max().item() < 1e-4
