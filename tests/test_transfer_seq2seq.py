"""`suite transfer` with sequence-to-sequence targets: they run on the encoder-decoder counterpart of
the experiment's preset; their arms are scratch on it and, per source, one side arm per entry of
`sides` (the source starts the encoder, the decoder or both: init.encoder_from / init.decoder_from).
The plan is checked on the resolved run configs, the bad keys are one line, and one tiny matrix runs."""
from __future__ import annotations

import dataclasses
import importlib
import json

import pytest
import torch

import suite
from suite import testing, transfer
from suite.errors import SuiteError
from suite.registry import get_registry
import test_toolkit  # its classification task, under a name of this file
from conftest import suite_main

plan_mod = importlib.import_module("suite.transfer.plan")  # the module (suite.transfer.plan is its function)

BASE = {"preset": "tiny", "seeds": "0", "lrs": "0.001", "source_steps": 2, "target_steps": 2, "evals": 1,
        "executor": "local"}


# -- two tasks that build in milliseconds: a single-stack source and a sequence-to-sequence target -----
class Majority(test_toolkit.Majority):
    name = "majority-s2s-test"


@dataclasses.dataclass
class Digits(suite.CharTokenizer):
    alphabet: str = "0123456789"

    def encode_target(self, text):
        return self.encode(text)

    def decode_target(self, ids):
        return self.decode(ids)


class Reverse(suite.Seq2SeqTask):
    name = "reverse-s2s-test"
    domain = "test"
    tokenizer_class = Digits
    text_metrics = ()

    def build_tokenizer(self, cfg):
        return Digits()

    def build_data(self, tokenizer, cfg):
        g = torch.Generator().manual_seed(int(cfg["seed"]))

        def split(n):
            return [{"source": s, "target": s[::-1]} for s in torch.randint(3, 13, (n, 5), generator=g).tolist()]

        return {"train": split(32), "val": split(8), "test": split(8)}

    def source_sample(self, tokenizer, raw):
        return tokenizer.encode(raw)


def weights(d_model: int):
    """A weight source of a single stack of d_model (64: tiny's blocks), random weights."""
    def load(argument):
        from suite.backbone import Backbone, BackboneConfig

        cfg = BackboneConfig(d_model=d_model, n_layers=2, n_heads=4, d_ff=256)
        return suite.Pretrained(backbone=cfg.to_dict(), state_dict={f"backbone.{k}": v for k, v in Backbone(cfg).state_dict().items()})
    return load


class Toys:
    @suite.hookimpl
    def suite_register_tasks(self, register):
        register(Majority())
        register(Reverse())

    @suite.hookimpl
    def suite_register_weight_sources(self, register):
        register(suite.WeightSource("fits-s2s-test", "tiny's blocks", weights(64)))
        register(suite.WeightSource("wide-s2s-test", "blocks of another width", weights(32)))


@pytest.fixture
def toys():
    plan_mod._BACKBONES.clear()  # weight sources are read once per process: these are this test's
    with testing.registered(Toys()) as reg:
        yield reg
    plan_mod._BACKBONES.clear()


def planned(registry, tmp_path, **overrides):
    exp = transfer.expand(transfer.load_experiment(None, None, {**BASE, **overrides}), registry)
    runner = transfer.Runner(exp, registry, tmp_path)
    return exp, {c.id: (c, runner.cell_config(c)) for c in transfer.plan(exp, registry)}, runner


INIT = ("from", "encoder_from", "decoder_from")


def test_a_seq2seq_target_has_scratch_on_the_encoder_decoder_and_an_arm_per_source_and_side(toys, tmp_path):
    exp, cells, runner = planned(toys, tmp_path, sources="majority-s2s-test,fits-s2s-test,wide-s2s-test",
                                 targets="reverse-s2s-test,majority-s2s-test", freeze="none,fpt", sides="encoder,decoder,both")
    assert exp["seq2seq_preset"] == "transformer-tiny" and exp["seq2seq_targets"] == ["reverse-s2s-test"]
    target = {c.arm: (c, cfg) for c, cfg in cells.values() if c.target == "reverse-s2s-test"}
    sides = ("encoder", "decoder", "both")
    assert set(target) == {"scratch", *(f"{s}/full@{side}" for s in ("majority-s2s-test", "fits-s2s-test") for side in sides)}
    scratch = target["scratch"][1]
    assert (scratch["backbone"]["preset"], scratch["backbone"]["n_encoder_layers"], scratch["backbone"]["n_decoder_layers"]) == \
        ("transformer-tiny", 2, 2)
    assert scratch["backbone"]["positions"] == "learned"  # the experiment's positions, as every run's
    assert all(scratch["init"][k] is None for k in INIT) and scratch["adapt"]["method"] == "full"
    source_dir = str(tmp_path / "sources" / "majority-s2s-test" / "majority-s2s-test-tiny-2steps-s0")
    starts = {"encoder": ("encoder_from",), "decoder": ("decoder_from",), "both": ("encoder_from", "decoder_from")}
    for (source, where) in (("majority-s2s-test", source_dir), ("fits-s2s-test", "fits-s2s-test")):
        for side in sides:
            cell, cfg = target[f"{source}/full@{side}"]
            assert cell.side == side and cell.arch == "transformer-tiny" and cell.adapt == "full"
            assert cell.id == f"reverse-s2s-test__{source}-full@{side}__lr0.001__s0"
            assert cfg["backbone"]["preset"] == "transformer-tiny" and cfg["adapt"]["method"] == "full"
            assert {k: cfg["init"][k] for k in INIT} == {k: where if k in starts[side] else None for k in INIT}
    # freeze fpt has no side arms, and the source whose blocks do not fit has none: the plan says why
    assert any(n.startswith("adapt fpt: no side arms") for n in exp["notes"])
    assert any(n.startswith("reverse-s2s-test <- wide-s2s-test: no side arms: its blocks do not fit transformer-tiny's "
                            "(d_model 32 != 64") for n in exp["notes"])
    # the single-stack target is planned as before: init.from, both freeze modes, no side
    plain = {c.arm: (c, cfg) for c, cfg in cells.values() if c.target == "majority-s2s-test"}
    assert "majority-s2s-test__fits-s2s-test-fpt__lr0.001__s0" in cells
    assert {c.side for c, _ in plain.values()} == {None}
    assert plain["fits-s2s-test/fpt"][1]["init"]["from"] == "fits-s2s-test" and plain["scratch"][1]["backbone"]["preset"] == "tiny"
    assert transfer.source_runs(exp, list(c for c, _ in cells.values()), toys) == \
        [transfer.SourceRun("majority-s2s-test", 0, 2, "tiny")]


def test_the_built_in_seq2seq_tasks_are_targets_and_sources(tmp_path):
    registry = get_registry()
    exp, cells, runner = planned(registry, tmp_path, preset="small", sources="text,speech-to-text,translate",
                                 targets="translate,speech-to-text,vision", sides="decoder,both")
    assert exp["seq2seq_targets"] == ["translate", "speech-to-text"]
    arms = {(c.target, c.arm): cfg for c, cfg in cells.values()}
    assert set(a for t, a in arms if t == "translate") == \
        {"scratch", "text/full@decoder", "text/full@both", "speech-to-text/full@decoder", "speech-to-text/full@both"}
    for target in ("translate", "speech-to-text"):
        assert arms[(target, "scratch")]["backbone"]["preset"] == "transformer-small"
        assert arms[(target, "text/full@decoder")]["init"]["decoder_from"].endswith("sources/text/text-small-2steps-s0")
    # a sequence-to-sequence source is pretrained on the encoder-decoder and starts the same side of another
    cfg = arms[("translate", "speech-to-text/full@both")]
    path = str(tmp_path / "sources" / "speech-to-text" / "speech-to-text-transformer-small-2steps-s0")
    assert (cfg["init"]["from"], cfg["init"]["encoder_from"], cfg["init"]["decoder_from"]) == (None, path, path)
    sources = transfer.source_runs(exp, [c for c, _ in cells.values()], registry)
    assert {s.task: s.preset for s in sources} == \
        {"text": "small", "speech-to-text": "transformer-small", "translate": "transformer-small"}
    assert runner.run_config("speech-to-text", 2, 0)["backbone"]["preset"] == "transformer-small"
    # but it gives a single-stack target no arm
    assert {a for t, a in arms if t == "vision"} == {"scratch", "text/full"}
    assert any(n.startswith("source translate: a sequence-to-sequence task") for n in exp["notes"])


def test_the_dry_run_lists_side_arms_with_their_init_settings(capsys, tmp_path):
    code, out, err = suite_main(capsys, "transfer", "--sources", "text", "--targets", "translate", "--seeds", "0",
                                "--lrs", "0.001", "--freeze", "none,fpt", "--dry-run", "--calibrate-steps", "0", "--out", tmp_path)
    assert code == 0, err
    assert "sequence-to-sequence targets translate: on transformer-tiny; side arms start encoder from each source" in out
    assert "not planned: adapt fpt: no side arms" in out
    lines = [l for l in out.splitlines() if l.startswith("  - target ")]
    assert len(lines) == 2
    assert "<- scratch " in lines[0] and lines[0].endswith("backbone transformer-tiny")
    assert "<- text/full@encoder " in lines[1]
    assert lines[1].endswith(f"backbone transformer-tiny, init.encoder_from {tmp_path}/sources/text/text-tiny-300steps-s0")


@pytest.mark.parametrize("overrides, message", [
    ({"sides": "encoder,middle"}, "sides: 'middle' is not a side of an encoder-decoder; give encoder, decoder, both"),
    ({"preset": "minilm"}, "seq2seq_preset: preset 'minilm' has no encoder-decoder counterpart 'transformer-minilm'"),
    ({"seq2seq_preset": "tiny"}, "seq2seq_preset: 'tiny' is not an encoder-decoder preset; give one of transformer-"),
    ({"sources": "joint:majority-s2s-test+reverse-s2s-test"}, "reverse-s2s-test is a sequence-to-sequence task"),
])
def test_bad_keys_are_one_line(toys, overrides, message):
    with pytest.raises(SuiteError, match="^[^\n]*" + message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        transfer.expand(transfer.load_experiment(None, None, {**BASE, "sources": "majority-s2s-test",
                                                              "targets": "reverse-s2s-test", **overrides}), toys)


def test_a_bad_side_in_an_experiment_file_exits_with_one_line(capsys, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("sides: [left]\n")
    code, _, err = suite_main(capsys, "transfer", "--config", str(path), "--targets", "translate", "--dry-run", "--out", tmp_path)
    assert code != 0 and "sides: 'left' is not a side" in err and len(err.strip().splitlines()) == 1


def test_a_tiny_matrix_with_encoder_and_decoder_arms_runs(toys, tmp_path):
    exp = transfer.load_experiment(None, None, {**BASE, "sources": "majority-s2s-test", "targets": "reverse-s2s-test",
                                                "sides": "encoder,decoder"})
    tiny = {k: v for k, v in testing.TINY.items() if k != "backbone.preset"}  # the experiment picks the presets
    exp["overrides"] = {**tiny, "run.threads": 1, "trainer.limit_val_batches": 1, "trainer.limit_test_batches": 1}
    exp["task_overrides"] = {"reverse-s2s-test": {"model.beam": 1, "model.max_output": 8}}
    out = tmp_path / "out"
    summary = transfer.run_experiment(exp, toys, out, progress=False)
    ids = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert ids == ["reverse-s2s-test__majority-s2s-test-full@decoder__lr0.001__s0.json",
                   "reverse-s2s-test__majority-s2s-test-full@encoder__lr0.001__s0.json",
                   "reverse-s2s-test__scratch__lr0.001__s0.json"]
    source = out / "sources" / "majority-s2s-test" / "majority-s2s-test-tiny-2steps-s0"
    for side in ("encoder", "decoder"):
        record = json.loads((out / "cells" / f"reverse-s2s-test__majority-s2s-test-full@{side}__lr0.001__s0.json").read_text())
        assert record["side"] == side and record["arm"] == f"majority-s2s-test/full@{side}" and record["arch"] == "transformer-tiny"
        assert record["config"]["init"][f"{side}_from"] == str(source) and record["config"]["init"]["from"] is None
        log = (out / "logs" / f"reverse-s2s-test__majority-s2s-test-full@{side}__lr0.001__s0.log").read_text()
        assert f"init {side} from run {source}" in log  # the source's blocks went into that side
        assert summary["reverse-s2s-test"][record["arm"]]["baseline"] == "scratch"
    scratch = json.loads((out / "cells" / "reverse-s2s-test__scratch__lr0.001__s0.json").read_text())
    assert "side" not in scratch and scratch["config"]["backbone"]["n_encoder_layers"] == 2
    report = (out / "report.md").read_text()
    assert "| majority-s2s-test/full@encoder |" in report and "| majority-s2s-test/full@decoder |" in report
    assert "run on the encoder-decoder preset `transformer-tiny`" in report
