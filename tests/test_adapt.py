"""Adaptation methods (`--adapt`, core/adapt.py) on a run started from a trained tiny arithmetic run:
what each trains, what it leaves as it was, the LoRA run's merged weights and export, joint runs,
and one line for every bad setting."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, metrics, run_dir_from, suite_main

STEPS = ["--trainer.max_steps", 6, "--trainer.val_check_interval", 6, "--data.val_size", 32, "--data.test_size", 32,
         "--run.checkpoint_every", 6]


def adapted_run(capsys, arith_run, root, method, *extra) -> tuple:
    code, out, err = suite_main(capsys, "train", "--task", "arithmetic", *TINY, *STEPS, "--init-from", arith_run,
                                "--adapt", method, "--optim.lr", 0.01, "--run.root", root, *extra)
    assert code == 0, err
    run = run_dir_from(out)
    return run, out, torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)


@pytest.fixture(scope="module")
def lora_run(arith_run, tmp_path_factory):
    from suite import cli

    root = tmp_path_factory.mktemp("lora")
    code = cli.main([str(a) for a in ["train", "--task", "arithmetic", *TINY, *STEPS, "--init-from", arith_run, "--adapt", "lora",
                                      "--adapt.lora_rank", 4, "--optim.lr", 0.01, "--run.root", root, "--run.name", "lora"]])
    assert code == 0
    return root / "arithmetic" / "lora"


def test_lora_trains_only_its_matrices_and_leaves_the_backbone_as_loaded(lora_run, arith_run):
    source = load_file(arith_run / "weights" / "backbone.safetensors")
    ckpt = torch.load(lora_run / "checkpoints" / "last.ckpt", weights_only=False)
    state = ckpt["state_dict"]
    backbone = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    lora = {k: v for k, v in backbone.items() if ".lora_" in k}
    frozen = {k.replace(".base_layer.", "."): v for k, v in backbone.items() if ".lora_" not in k}
    assert set(frozen) == set(source)  # every tensor of the source, under its own name once unwrapped
    assert all(torch.equal(frozen[k], source[k]) for k in source)  # norms, biases, positions, base weights: as loaded
    # rank 4 on qkv, proj, fc and proj of both blocks: an A and a B each; B starts at zero, so a trained B is not
    wrapped = {k.rsplit(".lora_", 1)[0] for k in lora}
    assert len(wrapped) == 2 * 4 and len(lora) == 2 * len(wrapped)
    assert all(v.shape[0] == 4 for k, v in lora.items() if ".lora_A." in k)
    assert all(v.abs().max() > 0 for k, v in lora.items() if ".lora_B." in k)
    # the optimiser holds the LoRA matrices, the adapter and the head, nothing else of the backbone
    adapter_head = [k for k in state if k.startswith(("adapter.", "head."))]
    optimised = sum(len(g["params"]) for g in ckpt["optimizer_states"][0]["param_groups"])
    assert optimised == len(lora) + len(adapter_head)
    info = metrics(lora_run)["adapt"]
    n_lora = sum(v.numel() for v in lora.values())
    n_own = sum(state[k].numel() for k in adapter_head)
    assert info["method"] == "lora" and info["trainable"] == n_lora + n_own
    assert info["share"] == pytest.approx(info["trainable"] / info["parameters"], abs=1e-6)


def test_a_lora_run_is_written_merged_and_its_export_equals_the_lora_model(lora_run, tmp_path, capsys):
    from suite import adapt, runs
    from suite.registry import get_registry

    registry = get_registry()
    ckpt = torch.load(lora_run / "checkpoints" / "last.ckpt", weights_only=False)
    # the LoRA model as it trained: the run's module, wrapped, with the checkpoint's unmerged weights
    task, cfg, tokenizer, module = runs.load_run(lora_run, registry, weights=False)
    adapt.apply(module, cfg)
    module.load_state_dict(ckpt["state_dict"])
    saved = load_file(lora_run / "weights" / "backbone.safetensors")
    assert not any("lora_" in k or "base_layer" in k for k in saved)
    for name, layer in adapt.lora_layers(module.backbone).items():  # W + (alpha / r) B A
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        scale = cfg["adapt"]["lora_alpha"] / cfg["adapt"]["lora_rank"]
        assert torch.allclose(saved[f"{name}.weight"], layer.get_base_layer().weight + scale * b @ a, atol=1e-6)
    code, _, err = suite_main(capsys, "export", lora_run, "--format", "hf", "--out", tmp_path / "export")
    assert code == 0, err
    assert "(adapt: lora, LoRA merged into the weights)" in (tmp_path / "export" / "README.md").read_text()
    _, _, _, exported = runs.load_run(tmp_path / "export", registry)
    assert not adapt.lora_layers(exported)
    batch = task.collate([task.build_data(tokenizer, cfg)["val"][i] for i in range(16)])
    module.eval(), exported.eval()
    with torch.no_grad():
        assert torch.allclose(exported(batch), module(batch), atol=1e-5, rtol=0)
    # and it loads where peft cannot be imported
    check = ("import sys; sys.modules['peft'] = None; from suite.cli import main; "
             f"raise SystemExit(main(['predict', {str(tmp_path / 'export')!r}, '12+34']))")
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr


def test_bitfit_trains_the_backbone_biases_only(arith_run, tmp_path, capsys):
    run, out, _ = adapted_run(capsys, arith_run, tmp_path, "bitfit")
    source = load_file(arith_run / "weights" / "backbone.safetensors")
    after = load_file(run / "weights" / "backbone.safetensors")
    changed = {k for k in source if not torch.equal(source[k], after[k])}
    biases = {k for k in source if k.endswith(".bias")}
    assert changed and changed <= biases  # some biases moved, nothing else did
    info = metrics(run)["adapt"]
    n_bias = sum(source[k].numel() for k in biases)
    assert info["method"] == "bitfit" and info["trainable"] > n_bias
    assert f"adapt bitfit: {info['trainable']:,} of {info['parameters']:,} parameters train" in out


@pytest.mark.parametrize("method, trains", [("frozen", lambda k: False), ("fpt", lambda k: not any(p in f".{k}" for p in (".attn.", ".mlp."))),
                                            ("full", lambda k: True)])
def test_frozen_fpt_and_full_train_the_backbone_tensors_they_name(arith_run, tmp_path, capsys, method, trains):
    run, _, _ = adapted_run(capsys, arith_run, tmp_path, method)
    source = load_file(arith_run / "weights" / "backbone.safetensors")
    after = load_file(run / "weights" / "backbone.safetensors")
    changed = {k for k in source if not torch.equal(source[k], after[k])}
    assert changed <= {k for k in source if trains(k)} and (changed or method == "frozen")
    if method == "full":
        assert any(".attn." in k for k in changed)


@pytest.mark.parametrize("method", ["lora", "bitfit", "orca"])
def test_a_joint_run_adapts_its_one_backbone(arith_run, tmp_path, capsys, method):
    code, out, err = suite_main(capsys, "train", "--task", "vision,arithmetic", *TINY, *STEPS, "--init-from", arith_run,
                                "--adapt", method, "--data.batch_size", 16, "--adapt.orca_steps", 5, "--run.root", tmp_path)
    assert code == 0, err
    m = metrics(run_dir_from(out))
    assert m["adapt"]["method"] == method and 0 < m["adapt"]["share"] < (1 if method != "orca" else 1.01)
    if method == "orca":  # each task's adapter aligned to the source's features
        assert set(m["adapt"]["align"]) == {"vision", "arithmetic"}
        assert all(a["after"] < a["before"] for a in m["adapt"]["align"].values())


@pytest.mark.parametrize("args, message", [
    (["--adapt", "lora", "--adapt.lora_rank", 65], "adapt.lora_rank 65 is larger than layer blocks.0.attn.qkv (192x64) allows: at most 64"),
    (["--adapt", "lora", "--adapt.lora_targets", "[nothing]"], "no linear layer of this backbone has such a name"),
    (["--adapt", "bitfit", "--backbone.bias", "false"], "this backbone has none"),
    (["--adapt", "half"], "--adapt must be one of full, frozen, fpt, lora, bitfit, orca or orca+METHOD, not 'half'"),
    (["--adapt", "orca+orca"], "orca+METHOD takes one of full, frozen, fpt, lora, bitfit after the +"),
    (["--adapt", "lora", "--freeze", "fpt"], "--freeze fpt (--adapt fpt) and --adapt lora contradict each other"),
    (["--adapt", "orca"], "--adapt orca aligns the task's adapter to its source's features: give --init-from or --adapt.orca_reference"),
])
def test_bad_adaptation_settings_are_one_line(tmp_path, capsys, args, message):
    code, _, err = suite_main(capsys, "train", "--task", "arithmetic", *TINY, *STEPS, "--run.root", tmp_path, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
