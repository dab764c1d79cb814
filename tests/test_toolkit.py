"""The plugin toolkit that `import suite` exports: hash splits, complete splits, patch data sets,
freeze modes, ClassificationTask, the batch layouts, and the promise that the API only grows."""
import random
import zlib

import pytest
import torch
from torch.utils.data import TensorDataset

import suite
from suite import testing
from suite.backbone import Backbone, BackboneConfig

# What the first public API of `import suite` exported: it must keep working (DESIGN.md, invariant 9).
API_BEFORE_THE_KIT = [
    "hookimpl", "Task", "WeightSource", "Pretrained", "SuiteError",
    "Tokenizer", "CharTokenizer", "EmbeddingAdapter", "PatchAdapter", "ClassifierHead", "TokenHead", "pool",
    "Backbone", "BackboneConfig", "attention_mask",
    "Objective", "Classification", "top_classes", "Generation", "greedy_decode", "IGNORE",
    "Choice", "mask_options", "load_run", "get_registry", "class_folders", "stratified_split", "LanguageModel", "sample",
]


def test_the_public_api_only_grows():
    assert set(API_BEFORE_THE_KIT) <= set(suite.__all__)
    assert all(hasattr(suite, name) for name in suite.__all__)


# -- hash splits --------------------------------------------------------------------------------
def test_hash_split_is_fixed_by_the_key_and_holds_out_the_asked_share():
    rng = random.Random(0)
    keys = [f"{rng.randrange(10**6)}+{rng.randrange(10**6)}=" for _ in range(20000)]
    splits = [suite.hash_split(k, 2.5, 7.5) for k in keys]
    assert splits == [suite.hash_split(k, 2.5, 7.5) for k in keys]
    assert abs(splits.count("val") / len(keys) - 0.025) < 0.005 and abs(splits.count("test") / len(keys) - 0.075) < 0.008
    assert all(0 <= suite.hash_bucket(k) < 100 for k in keys[:100])


def test_hash_split_keeps_the_splits_that_arithmetic_and_text_always_had():
    """Held-out problems and documents stay held out: with whole percents, the split is crc32 % 100
    against the percentages (the reference function ``old`` below)."""
    def old(text, holdout):
        b = zlib.crc32(text.encode()) % 100
        return "train" if b >= holdout else "val" if b < holdout / 2 else "test"

    keys = [f"{a}-{b}=" for a in range(300) for b in range(30)]
    assert [suite.hash_split(k, 5, 5) for k in keys] == [old(k, 10) for k in keys]
    assert [suite.hash_split(k, 10, 10) for k in keys] == [old(k, 20) for k in keys]


# -- complete splits and patch sets -----------------------------------------------------------------
def test_complete_splits_from_a_pool_from_train_and_test_and_as_given():
    x, y = torch.arange(100).float()[:, None], torch.arange(100) % 4
    pool = suite.complete_splits({"all": (x, y)}, 0.2, 0.2, seed=0)
    seen = torch.cat([pool[s][0][:, 0] for s in ("train", "val", "test")]).long()
    assert sorted(seen.tolist()) == list(range(100))
    assert [len(pool[s][1]) for s in ("train", "val", "test")] == [60, 20, 20]
    assert pool["val"][1].bincount().tolist() == [5, 5, 5, 5]  # per class
    given = suite.complete_splits({"train": (x[:80], y[:80]), "test": (x[80:], y[80:])}, 0.25, 0.5, seed=0)
    assert torch.equal(given["test"][0], x[80:]) and len(given["val"][1]) == 20 and len(given["train"][1]) == 60
    full = {"train": (x[:60], y[:60]), "val": (x[60:80], y[60:80]), "test": (x[80:], y[80:])}
    assert suite.complete_splits(full, 0.1, 0.1, seed=0) == full


def test_patch_set_encodes_once_in_chunks_and_serves_float32():
    calls = []

    def encode(raw):
        calls.append(len(raw))
        return raw.float().unsqueeze(1) * 2

    ds = suite.PatchSet(encode, torch.arange(10), torch.arange(10) % 2, chunk=4, dtype=torch.half)
    assert calls == [4, 4, 2] and ds.inputs.dtype == torch.half
    item = ds[3]
    assert item["inputs"].dtype == torch.float32 and item["inputs"].tolist() == [6.0] and int(item["label"]) == 1
    assert len(suite.PatchSet(encode, torch.arange(0), torch.arange(0))) == 0


# -- freeze modes -------------------------------------------------------------------------------------
def test_freeze_modes():
    backbone = Backbone(BackboneConfig())
    names = [n for n, _ in backbone.named_parameters()]
    assert suite.freeze_backbone(backbone, "none") == len(names)
    assert suite.freeze_backbone(backbone, "backbone") == 0
    trainable = suite.freeze_backbone(backbone, "fpt")
    kept = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert trainable == len(kept) and "pos_emb" in kept and any(".ln" in n for n in kept)
    assert not any(".attn." in n or ".mlp." in n for n in kept)
    with pytest.raises(suite.SuiteError, match="--freeze must be one of none, backbone, fpt"):
        suite.freeze_backbone(backbone, "half")


# -- ClassificationTask: a plugin supplies only its tokenizer and data -------------------------------
class Majority(suite.ClassificationTask):
    name = "majority-test"
    domain = "test"
    class_names = ["a", "b"]
    tokenizer_class = suite.CharTokenizer

    def build_tokenizer(self, cfg):
        return suite.CharTokenizer("ab")

    def build_data(self, tokenizer, cfg):
        x = torch.randint(3, 5, (256, 9), generator=torch.Generator().manual_seed(0))  # the ids of a and b
        return {s: TensorDataset(x, (x == 4).sum(1).gt(4).long()) for s in ("train", "val", "test")}

    def collate(self, samples):
        x, y = zip(*samples)
        return {"inputs": torch.stack(x), "label": torch.stack(y)}

    def predict_batch(self, model, text, options):
        return {"inputs": torch.tensor([model.tokenizer.encode(text)])}


class MajorityPlugin:
    @suite.hookimpl
    def suite_register_tasks(self, register):
        register(Majority())


def test_a_classification_task_with_only_tokenizer_and_data_trains_and_predicts(tmp_path):
    with testing.registered(MajorityPlugin()):
        batches = testing.check_batches("majority-test")
        assert set(batches["train"]) == {"inputs", "label"}
        run = testing.train("majority-test", tmp_path, steps=3)
        assert testing.metrics(run)["primary"] == "accuracy"
        assert (run / "test_confusion_matrix.json").is_file()
        lines = testing.predict(run, "abbab", top=2).splitlines()
        assert sorted(line.split("\t")[0] for line in lines) == ["a", "b"]
        assert abs(sum(float(line.split("\t")[1]) for line in lines) - 1) < 1e-3
        assert testing.train("majority-test", tmp_path, steps=1).name == "run-2"


def test_classification_task_class_names_come_from_the_tokenizer_first():
    class Tok(suite.Tokenizer):
        classes = ["x", "y", "z"]

    assert Majority().classes(Tok()) == ["x", "y", "z"]
    assert Majority().classes(suite.CharTokenizer("ab")) == ["a", "b"]
    with pytest.raises(NotImplementedError, match="class_names"):
        suite.ClassificationTask().classes(suite.CharTokenizer("ab"))


# -- batch layouts and suite.testing's checks ----------------------------------------------------------
def test_batch_layouts_name_what_each_objective_reads():
    assert suite.Classification.batch is suite.ClassificationBatch
    assert suite.ClassificationBatch.__required_keys__ == {"inputs", "label"}
    assert suite.GenerationBatch.__required_keys__ == {"inputs", "targets", "prefix_len", "padding"}
    assert suite.LanguageModel.batch.__optional_keys__ == {"n_bytes", "padding"}
    assert suite.Choice.batch.__optional_keys__ == {"legal", "correct", "soft", "padding"}


@pytest.mark.parametrize("batch, message", [
    ({"inputs": torch.zeros(2, 3)}, r"missing \['label'\] for ClassificationBatch"),
    ({"inputs": torch.zeros(2, 3), "label": [0, 1]}, "'label' is a list, not a tensor"),
    ({"inputs": torch.zeros(2, 3), "label": torch.zeros(3)}, r"disagree on the batch size: inputs \(2, 3\), label \(3,\)"),
])
def test_check_batch_names_what_is_wrong(batch, message):
    with pytest.raises(AssertionError, match=message):
        testing.check_batch(batch, suite.ClassificationBatch)
    testing.check_batch({"inputs": torch.zeros(2, 3), "label": torch.zeros(2)}, suite.ClassificationBatch)


def test_check_batches_catches_a_collate_that_breaks_the_layout():
    class NoLabels(Majority):
        def collate(self, samples):
            return {"inputs": torch.stack([x for x, _ in samples])}

    with pytest.raises(AssertionError, match=r"task 'majority-test', train split: missing \['label'\]"):
        testing.check_batches(NoLabels())
