"""The audio task on speech: the spoken-digits set made with espeak-ng (held-out voices, clip rate
and length, the missing-synthesiser error), SpecAugment on training batches only and the same for
the same seed, and a tiny training run on a small spoken-digits set."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch

import suite
from suite.plugins.audio import speech
from suite.plugins.audio.augment import TrainStream, build_masks
from suite.plugins.audio.data import read_audio

from conftest import metrics, run_dir_from, suite_main

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None and not any(Path(p).is_file() for p in speech.ESPEAK_PLACES),
                                reason="espeak-ng is not installed (make espeak-ng)")
SMALL = {"dataset": "spoken-digits", "clips_per_voice": 1}  # 200 clips: 20 voices x 10 words


def audio_cfg(**data) -> dict:
    from suite import config

    return config.resolve(audio_task(), overrides={f"data.{k}": v for k, v in data.items()})


def audio_task():
    from suite.registry import get_registry

    return get_registry().task("audio")


@pytest.fixture(scope="module")
def small_set() -> Path:
    return speech.spoken_digits(audio_cfg(**SMALL)["data"])


def test_test_voices_are_held_out(small_set):
    manifest = json.loads((small_set / "manifest.json").read_text())
    on_disk = {str(p.relative_to(small_set)) for p in small_set.rglob("*.wav")}
    assert on_disk == {c["path"] for c in manifest["clips"]} and len(on_disk) == 200
    voices = {split: set() for split in ("train", "val", "test")}
    for c in manifest["clips"]:
        split, word, name = c["path"].split("/")
        assert (split, word) == (c["split"], c["word"]) and name.startswith(c["voice"].replace("+", "_") + "-")
        voices[split].add(c["voice"])
    assert voices["test"] and voices["val"] and len(voices["train"]) > len(voices["test"])
    assert not voices["test"] & voices["train"] and not voices["val"] & voices["train"] and not voices["test"] & voices["val"]
    variants = {split: {v.split("+")[1] for v in vs} for split, vs in voices.items()}
    assert not variants["test"] & variants["train"]  # a held-out voice is a new speaker, not a known one in another accent
    for split in voices:  # every word in every split
        assert {p.parent.name for p in (small_set / split).rglob("*.wav")} == set(speech.WORDS)
    assert len({(c["speed"], c["pitch"]) for c in manifest["clips"]}) > 100  # speeds and pitches vary


def test_clips_decode_to_the_configured_rate_and_length(small_set):
    clip = next((small_set / "test" / "seven").glob("*.wav"))
    info = sf.info(str(clip))
    assert info.samplerate == speech.RATE and info.duration <= 1.0
    wave = read_audio(clip, 16000)
    assert abs(len(wave) - round(info.duration * 16000)) <= 1 and wave.abs().max() > 0.1
    task = audio_task()
    for rate, seconds in ((16000, None), (8000, 0.75)):
        cfg = audio_cfg(**SMALL, sample_rate=rate, clip_seconds=seconds)
        tok = task.build_tokenizer(cfg)
        assert tok.sample_rate == rate and tok.clip_samples == round(rate * (seconds or 1.0))
        data = task.build_data(tok, cfg)
        assert {s: len(data[s]) for s in ("val", "test")} == {"val": 20, "test": 40}
        assert data["test"].inputs.shape[1:] == (tok.grid[0] * tok.grid[1], tok.patch_dim)
        assert tok.frames == tok.clip_samples // tok.hop_length + 1


def test_spec_augment_masks_training_batches_only_and_the_same_for_a_seed(small_set):
    task = audio_task()
    cfg = audio_cfg(**SMALL)
    tok = task.build_tokenizer(cfg)
    data = task.build_data(tok, cfg)
    train = data["train"]
    assert isinstance(train, TrainStream) and isinstance(data["val"], suite.PatchSet)  # evaluation: patches cut once
    assert build_masks(audio_cfg()["data"]) is None  # the chords train as before: unmasked
    assert build_masks(audio_cfg(**SMALL, spec_augment=False)["data"]) is None

    train.configure(batch_size=16)
    indices = torch.arange(16)

    def batch(seed: int, batch: int = 0):
        stream = TrainStream(tok, train.features, train.labels, train.masks, seed).configure(16)
        return torch.stack([s["inputs"] for s in stream.samples(indices, stream.generator(batch))])

    clean = tok.patches(train.features[indices])
    masked = batch(0)
    assert torch.equal(masked, batch(0))  # the same seed and batch: the same masks, whatever ran before
    torch.rand(100)  # the global RNG moves on; the masks do not
    assert torch.equal(masked, batch(0))
    assert not torch.equal(masked, batch(1)) and not torch.equal(masked, batch(0, batch=1))
    changed = masked != clean
    assert changed.any() and (masked[changed] == 0).all()  # masked cells: the training mean, 0 once normalised
    assert changed.float().mean() < 0.6
    # a resumed stream serves what the whole one served from there on
    whole = [s["inputs"] for s in train]
    train.start = 2
    resumed = [s["inputs"] for s in train]
    assert len(whole) == 128 and len(resumed) == 96 and all(torch.equal(a, b) for a, b in zip(whole[32:], resumed))


def test_missing_espeak_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    monkeypatch.setattr(speech, "ESPEAK_PLACES", ())
    code, out, err = suite_main(capsys, "train", "--task", "audio", "--data.dataset", "spoken-digits",
                                "--data.clips_per_voice", 2, "--backbone.preset", "tiny", "--trainer.max_steps", 2,
                                "--no-progress", "--run.root", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "espeak-ng" in err and "apt-get install espeak-ng" in err


def test_tiny_training_run_on_spoken_digits(small_set, tmp_path, capsys):
    code, out, err = suite_main(capsys, "train", "--task", "audio", "--data.dataset", "spoken-digits",
                                "--data.clips_per_voice", 1, "--backbone.preset", "tiny", "--trainer.max_steps", 2,
                                "--no-progress", "--run.root", tmp_path)
    assert code == 0, err
    run = run_dir_from(out)
    m = metrics(run)
    assert m["step"] == 2 and set(m["splits"]) == {"val", "test"}
    tok = json.loads((run / "tokenizer.json").read_text())
    assert sorted(tok["classes"]) == sorted(speech.WORDS)
    code, out, err = suite_main(capsys, "predict", run, next((small_set / "test" / "two").glob("*.wav")), "--top", 3)
    assert code == 0 and len(out.strip().splitlines()) == 3 and out.split("\t")[0] in speech.WORDS
