"""The speech-to-text task: spoken numbers (targets are the digits said, test voices held out), the
tokenizer's round trips, recordings from a pairs file written here, augmentation of training clips,
one clear line for every bad file through the CLI, and a tiny training run, its eval on a pairs
file and a prediction."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors import safe_open

from suite import testing
from suite.plugins.audio import speech
from suite.plugins.audio import stt_data as stt
from suite.plugins.audio.augment import build_masks
from suite.plugins.audio.speech_to_text import SpeechTextTokenizer, audio_tokenizer

from conftest import metrics, run_dir_from, suite_main

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not any(Path(p).is_file() for p in speech.ESPEAK_PLACES),
    reason="espeak-ng is not installed (make espeak-ng)")
TINY_DATA = {"data.train_size": 12, "data.val_size": 4, "data.test_size": 6}
TINY_ARGS = ["--task", "speech-to-text", "--backbone.preset", "transformer-tiny", "--trainer.max_steps", 2,
             "--trainer.val_check_interval", 2, "--data.batch_size", 4, "--threads", 1, "--no-progress",
             *[str(x) for kv in TINY_DATA.items() for x in (f"--{kv[0]}", kv[1])]]
RATE = 8000  # the pairs' recordings: resampled to the task's 16 kHz when read


def stt_cfg(**overrides) -> dict:
    return testing.resolve("speech-to-text", {"backbone.preset": "transformer-tiny", **TINY_DATA, **overrides})


def task():
    return testing.get_task("speech-to-text")


def write_pairs(folder: Path, n: int = 12, long: int | None = None) -> Path:
    """``n`` short recordings (tones over noise) and a pairs file listing them (``clips/rec-<i>.wav``);
    recording ``long`` lasts 5 s, longer than the task's 4 s clip."""
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    lines = []
    for i in range(n):
        seconds = 5.0 if i == long else 0.5 + 0.1 * i
        t = torch.arange(int(seconds * RATE)) / RATE
        wave = 0.4 * torch.sin(2 * math.pi * (200 + 50 * i) * t) + 0.01 * torch.randn(len(t), generator=g)
        sf.write(folder / "clips" / f"rec-{i}.wav", wave.numpy(), RATE, subtype="PCM_16")
        lines.append(f"clips/rec-{i}.wav\tCall {i}, over!")
    (folder / "pairs.tsv").write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n")  # a blank line is skipped
    return folder / "pairs.tsv"


def test_number_words():
    assert stt.number_words(0) == "zero" and stt.number_words(40) == "forty" and stt.number_words(19) == "nineteen"
    assert stt.number_words(3412) == "three thousand four hundred and twelve"
    assert stt.number_words(3412, british=False) == "three thousand four hundred twelve"
    assert stt.number_words(3005) == "three thousand and five" and stt.number_words(3005, False) == "three thousand five"
    assert stt.number_words(700) == "seven hundred" and stt.number_words(12_000) == "twelve thousand"
    assert stt.number_words(21_090) == "twenty one thousand and ninety"


@needs_espeak
def test_spoken_numbers_are_their_digits_and_test_voices_are_held_out():
    d = stt_cfg()["data"]
    for split in ("train", "test"):
        n = int(d[f"{split}_size"])
        clips = stt.spoken_numbers(d, split, n, 16000)
        assert len(clips.waves) == len(clips.texts) == n
        assert all(0 < len(w) <= 4 * 16000 and w.dtype == torch.int16 for w in clips.waves)
    voices = {}
    for split in ("train", "val", "test"):
        (path, m), = stt.make_spoken_numbers(d, split, int(d[f"{split}_size"]))
        with safe_open(str(path), "pt") as f:
            drawn = json.loads(f.metadata()["clips"])[:m]
        for c in drawn:
            numbers = [int(x) for x in c["text"].split()]
            assert c["text"] == " ".join(map(str, numbers)) and 1 <= len(numbers) <= 2  # the digits, nothing else
            assert c["word"] in {", ".join(stt.number_words(x, b) for x in numbers) for b in (True, False)}
        voices[split] = {c["voice"].split("+")[1] for c in drawn}
        assert voices[split] <= set(stt.VARIANTS[split])
    assert not set(stt.TEST_VARIANTS) & set(stt.TRAIN_VARIANTS) and not set(stt.VAL_VARIANTS) & set(stt.TRAIN_VARIANTS)
    assert not set(stt.TEST_VARIANTS) & set(stt.VAL_VARIANTS)


@needs_espeak
def test_a_damaged_cache_file_is_made_again_the_same(capsys):
    d = stt_cfg()["data"]
    before = stt.spoken_numbers(d, "val", 4, 16000)
    (path, _), = stt.make_spoken_numbers(d, "val", 4)
    path.write_bytes(path.read_bytes()[:200])
    after = stt.spoken_numbers(d, "val", 4, 16000)
    assert "damaged speech-to-text cache" in capsys.readouterr().err
    assert after.texts == before.texts and all(torch.equal(a, b) for a, b in zip(after.waves, before.waves))


def test_missing_espeak_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    monkeypatch.setattr(speech, "ESPEAK_PLACES", ())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # clips another test of this process made need no espeak-ng
    code, out, err = suite_main(capsys, "train", *TINY_ARGS, "--data.train_size", 20, "--run.root", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "speech-to-text" in err and "apt-get install espeak-ng" in err


def test_tokenizer_round_trips():
    tok = SpeechTextTokenizer(audio_tokenizer(stt_cfg()["data"], mean=-5.0, std=3.0), " !,0123456789Caelorv")
    assert (tok.PAD, tok.BOS, tok.EOS, tok.vocab_size) == (0, 1, 2, 23)
    ids = tok.encode_target("Call 12, over!")
    assert min(ids) >= 3 and tok.decode_target(ids) == "Call 12, over!"
    assert tok.decode_target(tok.encode_target("Call #7")) == "Call 7"  # unknown characters are left out
    assert tok.decode_target([tok.BOS, *tok.encode_target("42"), tok.EOS, tok.PAD]) == "42"
    again = testing.roundtrip_tokenizer("speech-to-text", tok)
    assert again == tok and again.audio.grid == (1, 100) and again.audio.patch_dim == 320
    wave = torch.randn(1, 16000) * 0.1
    assert torch.equal(again.encode(wave), tok.encode(wave))


def test_pairs_file_trains_and_evaluates(tmp_path, capsys):
    pairs = write_pairs(tmp_path, long=11)
    cfg = stt_cfg(**{"data.pairs": str(pairs), "data.val_percent": 25, "data.test_percent": 25})
    tok = task().build_tokenizer(cfg)
    assert set("Cal,ov!r 0123456789") <= set(tok.alphabet) and tok.audio.sample_rate == 16000
    data = task().build_data(tok, cfg)
    sizes = {s: len(data[s]) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 11 and all(sizes.values())  # the 5 s recording is skipped...
    assert "skipped 1 recording(s)" in capsys.readouterr().err  # ...and reported
    sample = data["test"][0]
    assert sample["source"].shape == (100, 320) and sample["references"][0].startswith("Call ")
    assert tok.decode_target(sample["target"]) == sample["references"][0]
    every = task().build_eval_data(tok, cfg)
    assert list(every) == ["test"] and len(every["test"]) == 11
    assert sorted(every["test"].texts) == sorted(f"Call {i}, over!" for i in range(11))
    batch = task().collate([data["val"][0], data["val"][1]])
    assert batch["source"].shape == (2, 100, 320) and batch["inputs"].shape == batch["targets"].shape
    assert batch["references"] == [data["val"][0]["references"], data["val"][1]["references"]]
    # attention skips the zero padding after each clip's end (1.5 s or less of 4 s), never the [CLS] vector
    heard = (~batch["source_padding"]).sum(1)
    assert batch["source_padding"].shape == (2, 101) and not batch["source_padding"][:, 0].any()
    assert ((heard > 10) & (heard < 40)).all() and not batch["source_padding"][:, 1:10].any()


def test_augmentation_changes_clips_but_not_their_shape():
    d = stt_cfg()["data"]
    tok = SpeechTextTokenizer(audio_tokenizer(d, mean=-5.0, std=3.0), " 0123456789")
    g = torch.Generator().manual_seed(1)
    waves = [stt.to_int16(0.3 * torch.randn(n, generator=g)) for n in (16000, 24000, 63000, 8000)]
    clips = stt.Clips(waves, ["1", "22", "333", "4"], "test")
    x, lengths = stt.padded(waves)
    fast, fast_lengths = stt.perturb_speed(x, lengths, 16000, [1.25], 64000, torch.Generator().manual_seed(0))
    assert fast_lengths.tolist() == [12800, 19200, 50400, 6400] and fast.shape == (4, 50400)
    slow, slow_lengths = stt.perturb_speed(x, lengths, 16000, [0.8], 64000, torch.Generator().manual_seed(0))
    assert slow_lengths[2] == 63000 and torch.equal(slow[2, :63000], x[2])  # would pass the clip: left as it is
    noisy = stt.add_noise(x, lengths, (10.0, 10.0), torch.Generator().manual_seed(0))
    assert noisy.shape == x.shape and torch.equal(noisy[3, 8000:], x[3, 8000:])  # no noise in the padding
    snr = 10 * torch.log10(x[0].pow(2).sum() / (noisy[0] - x[0]).pow(2).sum())
    assert abs(float(snr) - 10.0) < 0.1

    def patches(**on):
        settings = {**d, "speed": False, "noise": False, "spec_augment": False, **on}
        masks = build_masks(settings) if settings["spec_augment"] else None
        stream = stt.SpeechStream(tok, clips, settings, masks, seed=0)
        return torch.stack([s["source"] for s in stream.samples(torch.arange(4), torch.Generator().manual_seed(5))])

    clean = patches()
    assert torch.equal(clean, tok.encode(x))
    for on in ({"speed": True}, {"noise": True}, {"spec_augment": True}):
        changed = patches(**on)
        assert changed.shape == clean.shape and not torch.equal(changed, clean), on
        assert torch.equal(changed, patches(**on)), on  # the same generator: the same augmentation


@pytest.mark.parametrize("case", ["missing file", "malformed line", "missing audio", "corrupt audio"])
def test_bad_pairs_are_one_line(case, tmp_path, capsys):
    pairs = write_pairs(tmp_path, n=4)
    expect = {"missing file": "no such pairs file", "malformed line": "line 3: expected audio_path<TAB>text",
              "missing audio": "line 2: " + str(tmp_path / "clips" / "gone.wav") + ": no such audio file",
              "corrupt audio": "line 5: " + str(tmp_path / "clips" / "rec-3.wav") + ": not a readable audio file"}[case]
    lines = pairs.read_text().splitlines()
    if case == "missing file":
        pairs = tmp_path / "nowhere.tsv"
    elif case == "malformed line":
        pairs.write_text("\n".join(lines[:2] + ["clips/rec-2.wav Call 2"] + lines[3:]) + "\n")
    elif case == "missing audio":
        pairs.write_text("\n".join(lines[:1] + ["clips/gone.wav\tCall 9"] + lines[1:]) + "\n")
    else:
        (tmp_path / "clips" / "rec-3.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    code, out, err = suite_main(capsys, "train", *TINY_ARGS, "--data.pairs", pairs, "--run.root", tmp_path / "runs")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(pairs) in err and expect in err


@needs_espeak
def test_tiny_training_run_evaluates_and_predicts(tmp_path, capsys):
    code, out, err = suite_main(capsys, "train", *TINY_ARGS, "--run.root", tmp_path)
    assert code == 0, err
    run = run_dir_from(out)
    m = metrics(run)
    assert m["step"] == 2 and {"wer", "cer", "exact_match"} <= set(m["splits"]["test"])
    assert json.loads((run / "tokenizer.json").read_text())["alphabet"] == " 0123456789"
    pairs = write_pairs(tmp_path / "mine", n=3)
    code, out, err = suite_main(capsys, "eval", run, "--data.pairs", pairs, "--no-progress")
    assert code == 0, err
    assert "wer" in out and "test" in out and "val" not in out
    code, out, err = suite_main(capsys, "predict", run, tmp_path / "mine" / "clips" / "rec-0.wav", "--beam", 2)
    assert code == 0, err
    assert set(out.strip()) <= set(" 0123456789")
