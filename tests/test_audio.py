"""The audio plugin: log-mel patch tokenizer, the synthesised chord data, a WAV/FLAC folder made
here (resampling, corrupt files skipped and counted), SPEECHCOMMANDS' layout, train / predict,
and --init-from between vision and audio in both directions."""
from __future__ import annotations

import json
import math

import pytest
import soundfile as sf
import torch

import suite
from suite import testing
from suite.cli import main
from suite.plugins.audio import AudioTokenizer, tokenizer_from_config
from suite.plugins.audio.data import fit_length, load_audio, read_audio
from suite.plugins.audio.synth import QUALITIES, chord_notes, synthesise

from conftest import metrics, run_dir_from, suite_main

TINY = ["--backbone.preset", "tiny", "--no-progress", "--trainer.val_check_interval", 10]
SMALL_CHORDS = ["--data.train_size", 256, "--data.val_size", 64, "--data.test_size", 64]


def audio_cfg(**data) -> dict:
    from suite import config
    from suite.registry import get_registry

    return config.resolve(get_registry().task("audio"), overrides={f"data.{k}": v for k, v in data.items()})


def tone(freq: float, seconds: float, rate: int) -> torch.Tensor:
    return 0.5 * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * rate)) / rate)


def test_tokenizer_patches_follow_the_spectrogram():
    tok = AudioTokenizer(sample_rate=8000, clip_seconds=0.5, n_fft=256, hop_length=64, n_mels=32, f_min=20.0,
                         f_max=4000.0, patch_freq=8, patch_time=16, mean=-3.0, std=2.0, classes=["a", "b"])
    assert tok.frames == 63 and tok.grid == (4, 3) and tok.patch_dim == 128
    wave = tone(3000.0, 0.5, 8000)  # high tone: energy in the top mel rows
    mel = tok.log_mel(wave[None])
    patches = tok.encode(wave[None])
    assert mel.shape == (1, 32, 63) and patches.shape == (1, 12, 128)
    # patch (row 3, col 1) is mel bins 24..31, frames 16..31, normalised
    expect = (mel[0, 24:32, 16:32].float() + 3.0) / 2.0
    assert torch.allclose(patches[0, 3 * 3 + 1], expect.reshape(-1), atol=1e-5)
    assert patches[0, 9:].mean() > patches[0, :3].mean() + 1  # the top row holds the tone
    # shorter input is padded, longer cropped: always the same number of patches
    assert tok.encode(wave[None, :1000]).shape == tok.encode(torch.cat([wave, wave])[None]).shape
    again = AudioTokenizer.from_state(json.loads(json.dumps(tok.state())))
    assert torch.equal(again.encode(wave[None]), patches)
    with pytest.raises(suite.SuiteError, match="must divide"):
        AudioTokenizer(8000, 0.5, 256, 64, 30, 20.0, 4000.0, 8, 16, 0.0, 1.0, [])


def test_batches_and_tokenizer_keep_the_plugin_contract():
    small = {"data.train_size": 64, "data.val_size": 16, "data.test_size": 16}
    batches = testing.check_batches("audio", small)
    assert batches["train"]["inputs"].dtype == torch.float32  # stored as float16, served as float32
    assert testing.roundtrip_tokenizer("audio", overrides=small).classes == list(QUALITIES)


def test_chords_are_the_labelled_qualities():
    pitches, present = chord_notes(torch.tensor([0, 5, 8]), torch.tensor([60, 60, 60]), torch.tensor([0, 1, 3]),
                                   torch.Generator().manual_seed(0))
    triad = sorted(pitches[0][present[0]].tolist())[-3:]
    assert [p % 12 for p in triad] == [0, 4, 7]  # C major in root position
    assert sorted(p % 12 for p in pitches[1][present[1]].tolist()[:4]) == [0, 4, 7, 10]  # C7, first inversion
    assert pitches[1][0] == 72  # its root moved up an octave
    assert sorted(p % 12 for p in pitches[2][present[2]].tolist()[:4]) == [0, 3, 6, 9]  # dim7, third inversion
    waves, labels = synthesise(64, 8000, 0.25, seed=1)
    again, _ = synthesise(64, 8000, 0.25, seed=1)
    assert waves.shape == (64, 2000) and torch.equal(waves, again) and labels.max() < len(QUALITIES)
    assert waves.abs().amax(1).min() > 0.29 and waves.abs().max() <= 0.9 + 1e-6 and torch.isfinite(waves).all()
    assert not torch.equal(waves, synthesise(64, 8000, 0.25, seed=2)[0])


def write_folder(root, rate=16000):
    """Two classes: low tones (WAV at 16 kHz and FLAC at 8 kHz, stereo) and high tones."""
    for name, base in (("low", 220.0), ("high", 1760.0)):
        (root / name).mkdir(parents=True)
        for i in range(10):
            wave = tone(base * (1 + 0.02 * i), 0.9 + 0.02 * i, rate)
            if i % 3 == 0:  # another sample rate and two channels: resampled and mixed down
                sf.write(root / name / f"{i}.flac", torch.stack([wave[::2], wave[::2]], 1).numpy(), rate // 2)
            else:
                sf.write(root / name / f"{i}.wav", wave.numpy(), rate)


def test_reading_resamples_and_mixes_down(tmp_path):
    wave = tone(440.0, 0.5, 8000)
    sf.write(tmp_path / "a.flac", torch.stack([wave, wave], 1).numpy(), 8000)
    got = read_audio(tmp_path / "a.flac", 16000)
    assert got.shape == (8000,)
    spectrum = torch.fft.rfft(got).abs()
    assert abs(int(spectrum.argmax()) * 16000 / 8000 - 440) < 3  # still 440 Hz after resampling
    assert fit_length(torch.ones(10), 4).tolist() == [1] * 4 and fit_length(torch.ones(2), 4).tolist() == [1, 1, 0, 0]
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    for path, reason in ((tmp_path / "bad.wav", "not a readable audio file"), (tmp_path / "none.wav", "no such audio file")):
        with pytest.raises(suite.SuiteError, match=reason) as e:
            read_audio(path, 16000)
        assert str(path) in str(e.value)


def test_folder_loader_skips_and_counts_corrupt_files(tmp_path, capsys):
    write_folder(tmp_path / "clips")
    (tmp_path / "clips" / "low" / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (tmp_path / "clips" / "high" / "empty.flac").write_bytes(b"")
    d = audio_cfg(dataset="folder", root=str(tmp_path / "clips"), val_fraction=0.2, test_fraction=0.2)["data"]
    tok = tokenizer_from_config(d, [])
    data = load_audio(d, tok.log_mel, tok.sample_rate, tok.clip_seconds, 0)
    err = capsys.readouterr().err
    assert data.classes == ["high", "low"] and data.skipped == 2
    assert "skipped 2 unreadable file(s)" in err and "empty.flac: not a readable audio file" in err
    assert sum(len(v) for v in data.labels.values()) == 20 and data.features["train"].shape[1:] == (128, tok.frames)


def test_speechcommands_layout_is_read_without_download(tmp_path):
    base = tmp_path / "SpeechCommands" / "speech_commands_v0.02"
    for word in ("yes", "no"):
        (base / word).mkdir(parents=True)
        for i in range(4):
            sf.write(base / word / f"spk{i}_nohash_0.wav", tone(300.0 if word == "yes" else 900.0, 1.0, 16000).numpy(), 16000)
    (base / "validation_list.txt").write_text("yes/spk0_nohash_0.wav\nno/spk0_nohash_0.wav\n")
    (base / "testing_list.txt").write_text("yes/spk1_nohash_0.wav\nno/spk1_nohash_0.wav\n")
    d = audio_cfg(dataset="speechcommands", root=str(tmp_path))["data"]
    tok = tokenizer_from_config(d, [])
    data = load_audio(d, tok.log_mel, tok.sample_rate, tok.clip_seconds, 0)
    assert data.classes == ["no", "yes"] and {s: len(v) for s, v in data.labels.items()} == {"train": 4, "val": 2, "test": 2}
    with pytest.raises(suite.SuiteError, match="--data.download true"):
        load_audio({**d, "root": str(tmp_path / "elsewhere")}, tok.log_mel, tok.sample_rate, tok.clip_seconds, 0)


def test_folder_train_and_predict(tmp_path, capsys):
    write_folder(tmp_path / "clips")
    code, out, err = suite_main(capsys, "train", "--task", "audio", *TINY, "--run.root", tmp_path / "runs",
                                "--data.dataset", "folder", "--data.root", tmp_path / "clips", "--trainer.max_steps", 30,
                                "--data.batch_size", 8, "--optim.lr", 3e-3, "--optim.warmup_steps", 5)
    assert code == 0, err
    run = run_dir_from(out)
    assert metrics(run)["splits"]["test"]["accuracy"] >= 0.75  # low vs high tones
    sf.write(tmp_path / "q.wav", tone(1800.0, 1.5, 22050).numpy(), 22050)  # other rate, longer clip
    code, out, err = suite_main(capsys, "predict", run, tmp_path / "q.wav", "--top", 2)
    assert code == 0, err
    lines = [l.split("\t") for l in out.strip().splitlines()]
    assert [l[0] for l in lines][0] == "high" and abs(sum(float(l[1]) for l in lines) - 1) < 1e-3
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    code, out, err = suite_main(capsys, "predict", run, tmp_path / "broken.wav")
    assert code != 0 and "broken.wav" in err and "not a readable audio file" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def chord_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio_runs")
    code = main(["train", "--task", "audio", *map(str, TINY), "--run.root", str(root), "--trainer.max_steps", "20",
                 *map(str, SMALL_CHORDS)])
    assert code == 0
    return next((root / "audio").iterdir())


def test_chord_default_run_and_predict(chord_run, tmp_path, capsys):
    m = metrics(chord_run)
    assert m["task"] == "audio" and m["step"] == 20 and set(m["splits"]) == {"val", "test"}
    assert (chord_run / "test_confusion_matrix.json").is_file()
    tok = json.loads((chord_run / "tokenizer.json").read_text())
    assert tok["classes"] == list(QUALITIES) and tok["std"] > 0
    waves, _ = synthesise(1, 16000, 0.5, seed=5)
    sf.write(tmp_path / "chord.wav", waves[0].numpy(), 16000)
    code, out, err = suite_main(capsys, "predict", chord_run, tmp_path / "chord.wav")
    assert code == 0 and out.split("\t")[0] in QUALITIES


def test_init_from_between_vision_and_audio(chord_run, tmp_path, capsys):
    code, out, err = suite_main(capsys, "train", "--task", "vision", *TINY, "--run.root", tmp_path,
                                "--trainer.max_steps", 5, "--init-from", chord_run)
    assert code == 0, err
    assert "loaded" in out and metrics(run_dir_from(out))["init"]["loaded"] > 0
    vision_run = run_dir_from(out)
    code, out, err = suite_main(capsys, "train", "--task", "audio", *TINY, "--run.root", tmp_path,
                                "--trainer.max_steps", 5, *SMALL_CHORDS, "--init-from", vision_run)
    assert code == 0, err
    audio_run = run_dir_from(out)
    from safetensors.torch import load_file
    vision_backbone = load_file(vision_run / "weights" / "backbone.safetensors")
    counts = metrics(audio_run)["init"]
    # every tensor of the vision run's backbone file was loaded, none skipped (counted from the file)
    assert counts["loaded"] == len(vision_backbone) > 0 and counts["skipped"] == 0, counts
    # the audio run's module, built and initialised as `suite train` does before its first step,
    # holds the vision run's backbone values exactly
    from suite import runs, train as train_mod
    from suite.registry import get_registry

    registry = get_registry()
    cfg = runs.read_config(audio_run)
    _, module = train_mod.build(registry.task("audio"), cfg)
    fresh = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    assert train_mod.apply_init(module, cfg, registry) == counts
    start = module.backbone.state_dict()
    assert set(start) == set(vision_backbone)
    for k, v in vision_backbone.items():
        assert torch.equal(start[k], v), k
    assert any(not torch.equal(fresh[k], v) for k, v in vision_backbone.items())  # the load changed something
    # and training went on from there: the audio run's saved backbone is not the vision run's
    trained = load_file(audio_run / "weights" / "backbone.safetensors")
    assert any(not torch.equal(trained[k], v) for k, v in vision_backbone.items())
    code, out, err = suite_main(capsys, "train", "--task", "audio", "--backbone.preset", "small", "--no-progress",
                                "--run.root", tmp_path, "--trainer.max_steps", 5, *SMALL_CHORDS, "--init-from", vision_run)
    assert code != 0 and "--backbone.preset tiny" in err
