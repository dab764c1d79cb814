"""Hugging Face data sets as data (`--data.dataset hf:NAME_OR_PATH`, suite.hf_datasets) for vision,
audio and text-classify: sets this file writes with save_to_disk and as parquet files, read offline;
their own splits and ClassLabel names, derived splits, image paths, and bad input."""
from __future__ import annotations

import importlib.util
import io
import json
import math
import sys

import pytest
import soundfile as sf
import torch
from PIL import Image

import suite
from suite.plugins.audio.data import load_audio
from suite.plugins.audio.tokenizer import tokenizer_from_config
from suite.plugins.vision.data import load_images

from conftest import run_dir_from, suite_main

# datasets is imported inside the tests: after conftest's private_cache, so that its cache is the session's
pytestmark = pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="needs suite[datasets]")

TINY = ["--backbone.preset", "tiny", "--no-progress", "--threads", 1, "--trainer.max_steps", 2,
        "--trainer.val_check_interval", 2]
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230)]  # class i is an image mostly of colour i


def cfg(task: str, **data) -> dict:
    from suite import config
    from suite.registry import get_registry

    return config.resolve(get_registry().task(task), overrides={f"data.{k}": v for k, v in data.items()})


def png(label: int, i: int, size=(10, 12)) -> bytes:
    im = Image.new("RGB", size, COLOURS[label])
    im.putpixel((i % size[0], 0), (i * 9 % 256, 0, 0))  # no two images alike
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def image_rows(labels: list[int]) -> dict:
    return {"image": [{"bytes": png(y, i), "path": None} for i, y in enumerate(labels)], "label": labels}


def test_vision_save_to_disk_trains_on_its_splits_with_its_classlabel_names(tmp_path, capsys):
    import datasets

    names = ["zebra", "apple", "mango"]  # not sorted: the run must keep the ClassLabel's order
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    sizes = {"train": 12, "validation": 3, "test": 6}
    dd = datasets.DatasetDict({s: datasets.Dataset.from_dict(image_rows([i % 3 for i in range(n)]), features=features)
                               for s, n in sizes.items()})
    dd.save_to_disk(str(tmp_path / "shapes"))
    spec = f"hf:{tmp_path / 'shapes'}"

    code, out, err = suite_main(capsys, "train", "--task", "vision", *TINY, "--run.root", tmp_path / "runs",
                                "--data.dataset", spec, "--data.image_size", 8, "--data.batch_size", 4)
    assert code == 0, err
    run = run_dir_from(out)
    tok = json.loads((run / "tokenizer.json").read_text())
    assert tok["classes"] == names and (tok["channels"], tok["height"], tok["width"]) == (3, 8, 8)
    cm = json.loads((run / "test_confusion_matrix.json").read_text())
    assert cm["classes"] == names and sum(map(sum, cm["rows_true_cols_predicted"])) == sizes["test"]

    data = load_images(cfg("vision", dataset=spec, image_size=8)["data"], 0)
    assert [len(data.train_labels), len(data.val_labels), len(data.test_labels)] == [12, 3, 6]  # its own splits, as they are
    for images, labels in ((data.train_images, data.train_labels), (data.test_images, data.test_labels)):
        # each image's dominant colour is its label's: rows and labels stay together
        assert torch.equal(images.float().mean((2, 3)).argmax(1), labels)


def test_vision_parquet_glob_of_image_paths_and_string_labels(tmp_path, monkeypatch, capsys):
    import datasets

    (tmp_path / "data" / "img").mkdir(parents=True)
    files, kinds = [], []
    for i in range(20):
        y = i % 2
        (tmp_path / "data" / "img" / f"{i}.png").write_bytes(png(y, i))
        files.append(f"img/{i}.png")  # relative to the data set's folder
        kinds.append(["dog", "cat"][y])
    files.append("img/missing.png")
    kinds.append("dog")
    rows = datasets.Dataset.from_dict({"file": files, "kind": kinds})
    rows.select(range(10)).to_parquet(str(tmp_path / "data" / "part-0.parquet"))
    rows.select(range(10, 21)).to_parquet(str(tmp_path / "data" / "part-1.parquet"))
    d = cfg("vision", dataset=f"hf:{tmp_path / 'data'}/*.parquet", image_column="file", label_column="kind",
            image_size=8, val_fraction=0.2, test_fraction=0.2)["data"]

    data = load_images(d, 0)
    assert "skipped 1 unreadable row" in capsys.readouterr().err
    assert data.classes == ["cat", "dog"]  # string labels: sorted
    # one pool of 20 readable rows, split per class by the fractions: 10 a class -> 2 val, 2 test, 6 train
    assert [data.train_labels.bincount().tolist(), data.val_labels.bincount().tolist(),
            data.test_labels.bincount().tolist()] == [[6, 6], [2, 2], [2, 2]]
    assert torch.equal(data.test_images.float().mean((2, 3)).argmax(1), 1 - data.test_labels)  # dog red (0), cat green (1)

    monkeypatch.setattr(suite.hf_datasets, "STREAM_BYTES", 0)  # "large": streamed, row by row, the same data
    streamed = load_images(d, 0)
    assert torch.equal(streamed.test_images, data.test_images) and torch.equal(streamed.train_labels, data.train_labels)


def tone(freq: float, seconds: float, rate: int) -> torch.Tensor:
    return 0.5 * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * rate)) / rate)


def test_audio_save_to_disk_trains_and_reads_clips_as_folder_files(tmp_path, capsys):
    import datasets

    names = ["whistle", "hum"]
    clips = {"train": 8, "test": 4}
    rows = {s: {"audio": [], "label": []} for s in clips}
    for split, n in clips.items():
        for y in (0, 1):  # class-major, as a folder lists its files
            for i in range(n // 2):
                rate = (8000, 22050)[i % 2]  # resampled to 16 kHz
                wave = tone((1500.0, 220.0)[y] + 10 * i, 0.4, rate).numpy()
                folder = tmp_path / "clips" / split / names[y]
                folder.mkdir(parents=True, exist_ok=True)
                sf.write(folder / f"{i}.wav", wave, rate)
                rows[split]["audio"].append({"bytes": (folder / f"{i}.wav").read_bytes(), "path": None})
                rows[split]["label"].append(y)
    label = datasets.ClassLabel(names=names)
    dd = datasets.DatasetDict({s: datasets.Dataset.from_dict(r).cast_column("audio", datasets.Audio()).cast_column("label", label)
                               for s, r in rows.items()})
    dd.save_to_disk(str(tmp_path / "sounds"))
    spec = f"hf:{tmp_path / 'sounds'}"

    code, out, err = suite_main(capsys, "train", "--task", "audio", *TINY, "--run.root", tmp_path / "runs",
                                "--data.dataset", spec, "--data.clip_seconds", 0.5, "--data.val_fraction", 0.25,
                                "--data.batch_size", 4)
    assert code == 0, err
    run = run_dir_from(out)
    assert json.loads((run / "tokenizer.json").read_text())["classes"] == names
    cm = json.loads((run / "test_confusion_matrix.json").read_text())
    assert cm["classes"] == names and sum(map(sum, cm["rows_true_cols_predicted"])) == clips["test"]

    # the same clips as a folder: the same spectrograms (read, resampled and cut by the same code)
    d = cfg("audio", dataset=spec, clip_seconds=0.5)["data"]
    tok = tokenizer_from_config(d, [])
    hf = load_audio(d, tok.log_mel, tok.sample_rate, tok.clip_seconds, 0)
    folder = load_audio({**d, "dataset": "folder", "root": str(tmp_path / "clips")}, tok.log_mel, tok.sample_rate,
                        tok.clip_seconds, 0)
    assert hf.labels["test"].tolist() == [0, 0, 1, 1] and folder.classes == ["hum", "whistle"]  # folders sort classes
    assert torch.equal(hf.features["test"], folder.features["test"][[2, 3, 0, 1]])


def test_text_classify_parquet_directory_uses_its_train_and_test_files(tmp_path, capsys):
    import datasets

    names = ["sports", "cooking"]
    features = datasets.Features({"body": datasets.Value("string"), "topic": datasets.ClassLabel(names=names)})
    words = (["goal", "match", "team", "score"], ["oven", "salt", "bake", "stir"])

    def rows(n, offset):
        return datasets.Dataset.from_dict(
            {"body": [f"{words[i % 2][i % 4]} {words[i % 2][(i + 1) % 4]} number {i + offset}" for i in range(n)],
             "topic": [i % 2 for i in range(n)]}, features=features)

    (tmp_path / "news").mkdir()
    rows(40, 0).to_parquet(str(tmp_path / "news" / "train.parquet"))
    rows(8, 1000).to_parquet(str(tmp_path / "news" / "test.parquet"))
    code, out, err = suite_main(capsys, "train", "--task", "text-classify", *TINY, "--run.root", tmp_path / "runs",
                                "--data.dataset", f"hf:{tmp_path / 'news'}", "--data.text_column", "body",
                                "--data.label_column", "topic", "--data.max_tokens", 32, "--data.holdout_percent", 40,
                                "--data.batch_size", 4)
    assert code == 0, err
    run = run_dir_from(out)
    cm = json.loads((run / "test_confusion_matrix.json").read_text())
    assert cm["classes"] == names and sum(map(sum, cm["rows_true_cols_predicted"])) == 8  # test.parquet's rows

    from suite.plugins.text.data import labelled

    records = labelled(cfg("text-classify", dataset=f"hf:{tmp_path / 'news'}", text_column="body", label_column="topic"))
    assert sorted(r.text for r in records if r.split == "test") == sorted(rows(8, 1000)["body"])
    assert all(r.label == names[int(r.text.split()[-1]) % 2] for r in records)


@pytest.fixture
def saved(tmp_path):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    train = datasets.Dataset.from_dict(image_rows([0, 1] * 3), features=features)
    datasets.DatasetDict({"train": train, "extra": train.select([])}).save_to_disk(str(tmp_path / "saved"))
    return f"hf:{tmp_path / 'saved'}"


@pytest.mark.parametrize("args, message", [
    (["--data.label_column", "kind"], "{spec} train: no column 'kind' (columns: image, label); set --data.label_column"),
    (["--data.image_column", "img"], "{spec} train: no column 'img' (columns: image, label); set --data.image_column"),
    (["--data.split", "extra"], "{spec} extra: the split is empty"),
    (["--data.split", "dev"], "{spec}: no split 'dev' (splits: train, extra)"),
])
def test_bad_columns_and_splits_are_one_line(saved, args, message, tmp_path, capsys):
    code, _, err = suite_main(capsys, "train", "--task", "vision", *TINY, "--run.root", tmp_path / "runs",
                              "--data.dataset", saved, *args)
    assert code == 2 and err.strip() == "suite: error: " + message.format(spec=saved)


def test_not_a_data_set_offline_hub_and_missing_package_are_one_line(tmp_path, monkeypatch, capsys):
    import datasets

    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")

    def error(task, spec, *args):
        code, _, err = suite_main(capsys, "train", "--task", task, *TINY, "--run.root", tmp_path / "runs",
                                  "--data.dataset", spec, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        return err

    assert "not a data set: The directory" in error("vision", f"hf:{tmp_path / 'empty'}")
    assert "not a data set: give files of one kind" in error("audio", f"hf:{tmp_path / 'notes.txt'}")
    assert "no such file, folder or glob" in error("text-classify", f"hf:{tmp_path / 'nowhere'}")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    assert "hf:someone/no-such-set: not a local data set, and the Hugging Face Hub cannot be reached (offline" \
        in error("vision", "hf:someone/no-such-set")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    assert "pip install 'suite[datasets]'" in error("text-classify", f"hf:{tmp_path / 'empty'}")
