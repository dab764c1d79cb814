"""The vision plugin: patch tokenizer, train-only augmentation, the digits default, MNIST-format
(idx) files and an ImageFolder made here, corrupt images, train / eval / predict."""
from __future__ import annotations

import json
import struct

import pytest
import torch
from PIL import Image

import suite
from suite import testing
from suite.plugins.vision import ImageTokenizer, TrainStream, VisionTask, build_augment
from suite.plugins.vision.data import load_images

from conftest import metrics, run_dir_from, suite_main

TINY = ["--backbone.preset", "tiny", "--no-progress", "--trainer.val_check_interval", 10]


def vision_cfg(**data) -> dict:
    from suite import config
    from suite.registry import get_registry

    return config.resolve(get_registry().task("vision"), overrides={f"data.{k}": v for k, v in data.items()})


def test_patches_are_the_normalised_image_squares():
    tok = ImageTokenizer(channels=3, height=4, width=6, patch_size=2, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.5], classes=["a"])
    images = torch.randint(0, 256, (2, 3, 4, 6), dtype=torch.uint8)
    patches = tok.encode(images)
    assert patches.shape == (2, 6, 12) and tok.grid == (2, 3) and tok.patch_dim == 12
    norm = (images.float() / 255 - torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)) / torch.tensor([0.2, 0.25, 0.5]).view(3, 1, 1)
    # patch (row 1, col 2) is pixels [2:4, 4:6] of every channel, channel-major
    assert torch.allclose(patches[1, 1 * 3 + 2], norm[1, :, 2:4, 4:6].reshape(-1), atol=1e-6)
    again = ImageTokenizer.from_state(json.loads(json.dumps(tok.state())))
    assert torch.equal(again.encode(images), patches)
    with pytest.raises(suite.SuiteError, match="must divide"):
        ImageTokenizer(1, 8, 8, 3, [0.0], [1.0], ["a"])


def test_batches_and_tokenizer_keep_the_plugin_contract():
    batches = testing.check_batches("vision")
    assert batches["test"]["inputs"].shape == (4, 16, 4)  # 8x8 digits in 2x2 patches
    assert testing.roundtrip_tokenizer("vision").classes == [str(i) for i in range(10)]


def test_digits_default_splits_are_disjoint_and_stratified():
    cfg = vision_cfg()
    task = VisionTask()
    tok = task.build_tokenizer(cfg)
    assert (tok.channels, tok.height, tok.width, tok.patch_size) == (1, 8, 8, 2) and tok.classes == [str(i) for i in range(10)]
    assert 0.2 < tok.mean[0] < 0.4 and 0.3 < tok.std[0] < 0.5  # digits' own statistics, not ImageNet's
    data = load_images(cfg["data"], 0)
    assert len(data.train_labels) + len(data.val_labels) + len(data.test_labels) == 1797
    assert abs(len(data.test_labels) - 0.2 * 1797) < 10 and data.test_labels.bincount().min() >= 30
    parts = suite.stratified_split(torch.arange(100) % 4, [0.1, 0.2], seed=3)
    assert sorted(torch.cat(parts).tolist()) == list(range(100)) and [len(p) for p in parts] == [8, 20, 72]  # 25 per class: round(2.5) = 2


def test_augmentation_is_for_training_only():
    cfg = vision_cfg()
    task = VisionTask()
    tok = task.build_tokenizer(cfg)
    data = load_images(cfg["data"], 0)
    sets = task.build_data(tok, cfg)
    # evaluation patches are exactly the tokenised images, every time
    assert isinstance(sets["test"], suite.PatchSet) and isinstance(sets["train"], TrainStream)
    assert torch.equal(sets["test"][5]["inputs"], tok.encode(data.test_images[5:6])[0])
    assert sets["train"].augment is not None
    # without augmentation the stream serves the plain training images; with it, altered ones
    plain = TrainStream(tok, data.train_images[:16], data.train_labels[:16], None, 8, 0)
    torch.manual_seed(0)
    aug = TrainStream(tok, data.train_images[:16], data.train_labels[:16], build_augment(cfg["data"], "digits"), 8, 0)
    got_plain = [s for _, s in zip(range(16), plain)]
    got_aug = [s for _, s in zip(range(16), aug)]
    encoded = tok.encode(data.train_images[:16])
    # each plain sample is exactly its own image's patches, with that image's label
    exact = [torch.equal(s["inputs"], encoded[int(s["index"])]) and int(s["label"]) == int(data.train_labels[int(s["index"])])
             for s in got_plain]
    assert all(exact) and len(exact) == 16, exact
    assert sorted(int(s["index"]) for s in got_plain) == list(range(16))  # one pass over the 16 images, none repeated
    # augmented samples keep their image's label, but at least half of them differ from the plain patches
    assert all(int(s["label"]) == int(data.train_labels[int(s["index"])]) for s in got_aug)
    assert sum(not any(torch.equal(s["inputs"], e) for e in encoded) for s in got_aug) >= 8
    assert build_augment({**cfg["data"], "augment": False}, "digits") is None


def write_idx(path, array: torch.Tensor) -> None:
    """An MNIST-format (idx) file: magic 0x0000 08 NDIM, big-endian sizes, uint8 data."""
    header = struct.pack(">HBB", 0, 0x08, array.dim()) + struct.pack(f">{array.dim()}I", *array.shape)
    path.write_bytes(header + array.to(torch.uint8).numpy().tobytes())


def make_mnist(root, n_train=60, n_test=20):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        images = torch.zeros(n, 28, 28, dtype=torch.uint8)
        for i, y in enumerate(labels.tolist()):  # a bright bar whose position is the label
            images[i, 2 + 2 * y:4 + 2 * y, 4:24] = 200 + torch.randint(0, 55, (1,), generator=g).item()
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


def test_mnist_loader_reads_idx_files_and_never_downloads(tmp_path):
    make_mnist(tmp_path)
    data = load_images(vision_cfg(dataset="mnist", root=str(tmp_path))["data"], 0)
    assert data.train_images.shape[1:] == (1, 28, 28) and len(data.test_labels) == 20
    assert len(data.train_labels) + len(data.val_labels) == 60 and data.classes[0].startswith("0")
    assert data.test_images[3, 0, 8, 10] >= 200 and int(data.test_labels[3]) == 3
    with pytest.raises(suite.SuiteError, match=r"fashion_mnist not found.*--data.download true"):
        load_images(vision_cfg(dataset="fashion_mnist", root=str(tmp_path))["data"], 0)
    with pytest.raises(suite.SuiteError, match="needs --data.root"):
        load_images(vision_cfg(dataset="cifar10")["data"], 0)


def make_folder(root, n=12):
    """Two classes of 16x16 RGB images: red squares on the left, blue on the right."""
    for c, (colour, x0) in enumerate((((255, 0, 0), 0), ((0, 0, 255), 1))):
        d = root / ("left_red", "right_blue")[c]
        d.mkdir(parents=True)
        for i in range(n):
            im = Image.new("RGB", (16, 16), (i * 3, i * 3, i * 3))
            im.paste(colour, (x0 * 8 + (i % 3), 4, x0 * 8 + 6 + (i % 3), 12))
            im.save(d / f"{i}.png")


def test_image_folder_trains_predicts_and_reports_bad_images(tmp_path, capsys):
    make_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "left_red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "imgs" / "notes.txt").write_text("not a class folder")
    code, out, err = suite_main(capsys, "train", "--task", "vision", *TINY, "--run.root", tmp_path / "runs",
                                "--data.dataset", "folder", "--data.root", tmp_path / "imgs", "--data.image_size", 16,
                                "--data.val_fraction", 0.2, "--data.test_fraction", 0.2, "--trainer.max_steps", 20,
                                "--data.batch_size", 8)
    assert code == 0, err
    assert "skipped 1 unreadable image" in err and "broken.png" in err
    run = run_dir_from(out)
    tok = json.loads((run / "tokenizer.json").read_text())
    assert tok["classes"] == ["left_red", "right_blue"] and (tok["channels"], tok["height"], tok["patch_size"]) == (3, 16, 2)
    cm = json.loads((run / "test_confusion_matrix.json").read_text())
    assert cm["classes"] == tok["classes"] and sum(map(sum, cm["rows_true_cols_predicted"])) == 4  # 20% of 12 per class

    # predict: any image size is resized; the answer is a class and a probability
    big = tmp_path / "query.jpg"
    Image.open(tmp_path / "imgs" / "right_blue" / "3.png").resize((64, 64)).save(big)
    code, out, err = suite_main(capsys, "predict", run, big, "--top", 2)
    assert code == 0, err
    lines = [l.split("\t") for l in out.strip().splitlines()]
    assert len(lines) == 2 and {l[0] for l in lines} == {"left_red", "right_blue"}
    assert abs(sum(float(l[1]) for l in lines) - 1) < 1e-3
    for bad, reason in ((tmp_path / "imgs" / "left_red" / "broken.png", "not a readable image"),
                        (tmp_path / "missing.png", "no such image file"), (tmp_path / "imgs", "is a directory")):
        code, out, err = suite_main(capsys, "predict", run, bad)
        assert code != 0 and str(bad) in err and reason in err and len(err.strip().splitlines()) == 1


def test_digits_default_run_learns(tmp_path, capsys):
    code, out, err = suite_main(capsys, "train", "--task", "vision", *TINY, "--run.root", tmp_path,
                                "--trainer.max_steps", 200, "--trainer.val_check_interval", 200, "--optim.warmup_steps", 20)
    assert code == 0, err
    run = run_dir_from(out)
    m = metrics(run)
    assert m["splits"]["test"]["accuracy"] > 0.6  # 10 classes: chance is 0.1
    assert (run / "weights" / "adapter.safetensors").is_file()
    # a digit drawn as a PNG (bright ink on black, as in the training data)
    digit = torch.zeros(64, 64, dtype=torch.uint8)
    digit[8:56, 28:36] = 255  # a "1"
    Image.fromarray(digit.numpy()).save(tmp_path / "one.png")
    code, out, err = suite_main(capsys, "predict", run, tmp_path / "one.png")
    assert code == 0 and out.split("\t")[0] in [str(i) for i in range(10)] and 0 < float(out.split("\t")[1]) <= 1
    code, out, err = suite_main(capsys, "eval", run)
    assert code == 0 and "accuracy" in out


def test_bad_settings_are_one_clear_error(tmp_path, capsys):
    cfg = vision_cfg()
    with pytest.raises(suite.SuiteError, match="raise --data.patch_size"):
        VisionTask().build_adapter(ImageTokenizer(1, 64, 64, 2, [0.0], [1.0], ["a"]), 64, cfg)
    with pytest.raises(suite.SuiteError, match="must be one of digits"):
        load_images({**cfg["data"], "dataset": "svhn"}, 0)
    code, _, err = suite_main(capsys, "train", "--task", "vision", *TINY, "--run.root", tmp_path,
                              "--data.dataset", "folder", "--data.root", tmp_path / "nowhere")
    assert code != 0 and "nowhere: image folder not found" in err
