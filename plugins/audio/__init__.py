"""Audio: clip classification with AST-style spectrogram patches on the shared backbone.

A mono waveform at ``sample_rate`` is cut or padded to ``clip_seconds``, turned into a log-mel
spectrogram with torchaudio (``n_mels`` bins, ``hop_length``), normalised with the training
set's mean and std (one scalar each, as in the Audio Spectrogram Transformer) and cut into
non-overlapping ``patch_freq`` x ``patch_time`` patches; the adapter projects them to ``d_model``
with a [CLS] vector and factorised frequency-row + time-column positions.

Data (``--data.dataset``): ``chords`` (chord qualities synthesised with torch, the default),
``folder`` (WAV/FLAC files in class subfolders) and ``speechcommands`` (torchaudio).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sys
from pathlib import Path
from typing import Optional

import torch

import suite

from .data import AudioSplits, feature_cache_ok, fit_length, load_audio, read_audio


# -- tokenizer --------------------------------------------------------------------------------
@dataclasses.dataclass
class AudioTokenizer(suite.Tokenizer):
    """Waveforms (B, L) -> normalised time-frequency patches (B, rows * cols, patch_freq * patch_time).

    rows = n_mels / patch_freq (frequency, low to high), cols = frames / patch_time (time).
    """

    sample_rate: int
    clip_seconds: float
    n_fft: int
    hop_length: int
    n_mels: int
    f_min: float
    f_max: float
    patch_freq: int
    patch_time: int
    mean: float
    std: float
    classes: list[str]

    def __post_init__(self):
        if self.n_mels % self.patch_freq:
            raise suite.SuiteError(f"data.patch_freq {self.patch_freq} must divide data.n_mels {self.n_mels}")
        if self.time_patches < 1:
            raise suite.SuiteError(
                f"a {self.clip_seconds} s clip has {self.frames} frames, fewer than data.patch_time {self.patch_time}")

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def frames(self) -> int:
        return self.clip_samples // self.hop_length + 1  # centred STFT frames

    @property
    def time_patches(self) -> int:
        return self.frames // self.patch_time

    @property
    def grid(self) -> tuple[int, int]:
        return self.n_mels // self.patch_freq, self.time_patches

    @property
    def patch_dim(self) -> int:
        return self.patch_freq * self.patch_time

    @functools.cached_property
    def _mel(self):
        import torchaudio

        return torchaudio.transforms.MelSpectrogram(
            self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
            f_min=self.f_min, f_max=self.f_max, power=2.0)

    def state(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, L) waveforms -> (B, n_mels, frames) float16 log-mel spectrograms (not normalised)."""
        with torch.no_grad():
            return self._mel(fit_length(waves.float(), self.clip_samples)).add_(1e-6).log_().half()

    def patches(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) log-mel -> (B, rows * cols, patch_dim) normalised float32 patches."""
        x = (log_mel.float() - self.mean) / self.std
        B = x.shape[0]
        (R, C), pf, pt = self.grid, self.patch_freq, self.patch_time
        x = x[:, :, :C * pt].reshape(B, R, pf, C, pt).permute(0, 1, 3, 2, 4)  # (B, R, C, pf, pt)
        return x.reshape(B, R * C, pf * pt)

    def encode(self, waves: torch.Tensor) -> torch.Tensor:
        return self.patches(self.log_mel(waves))


def tokenizer_from_config(d: dict, classes: list[str], mean: float = 0.0, std: float = 1.0) -> AudioTokenizer:
    seconds = d["clip_seconds"] if d["clip_seconds"] is not None else (0.5 if d["dataset"] == "chords" else 1.0)
    f_max = d["f_max"] if d["f_max"] is not None else d["sample_rate"] / 2
    return AudioTokenizer(int(d["sample_rate"]), float(seconds), int(d["n_fft"]), int(d["hop_length"]),
                          int(d["n_mels"]), float(d["f_min"]), float(f_max), int(d["patch_freq"]),
                          int(d["patch_time"]), mean, std, list(classes))


# -- data: every split is a suite.PatchSet of normalised patches, computed once ----------------
_CACHE: dict = {}
# Data sets whose features are kept on disk: generated, or a fixed published set. A folder of
# the user's own files is read afresh every run (its files may change).
CACHED_DATASETS = ("chords", "speechcommands")


def feature_settings(d: dict, seed: int) -> dict:
    return {"seed": seed, **{k: v for k, v in sorted(d.items()) if k not in ("batch_size", "eval_batch_size", "num_workers")}}


def feature_cache(d: dict, seed: int):
    """The file that holds the features of these settings: ``suite.cache_dir("audio")/<digest>.safetensors``."""
    digest = hashlib.sha1(json.dumps(feature_settings(d, seed), sort_keys=True, default=str).encode()).hexdigest()[:12]
    return suite.cache_dir("audio", d.get("cache_dir")) / f"{d['dataset']}-{digest}.safetensors"


def compute_features(d: dict, seed: int) -> AudioSplits:
    featurizer = tokenizer_from_config(d, [])
    splits = load_audio(d, featurizer.log_mel, featurizer.sample_rate, featurizer.clip_seconds, seed)
    if splits.skipped:
        print(f"suite: audio: {splits.skipped} unreadable file(s) skipped in all", file=sys.stderr)
    return splits


def write_features(path, splits: AudioSplits) -> None:
    from safetensors.torch import save_file

    tensors = {f"{kind}.{split}": t.contiguous() for kind, by_split in (("features", splits.features), ("labels", splits.labels))
               for split, t in by_split.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"classes": json.dumps(splits.classes), "skipped": str(splits.skipped)})
    tmp.replace(path)


def read_features(path) -> AudioSplits:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        out = AudioSplits(json.loads(meta["classes"]), {}, {}, int(meta["skipped"]))
        for key in f.keys():
            kind, split = key.split(".", 1)
            getattr(out, kind)[split] = f.get_tensor(key)
    return out


def features_for(d: dict, seed: int) -> AudioSplits:
    """Log-mel spectrograms of the configured data set: from the disk cache that ``prepare_data``
    wrote, else computed; kept in memory for the next run in this process."""
    key = json.dumps(feature_settings(d, seed), sort_keys=True, default=str)
    if key not in _CACHE:
        _CACHE.clear()
        path = feature_cache(d, seed)
        _CACHE[key] = read_features(path) if d["dataset"] in CACHED_DATASETS and path.is_file() else compute_features(d, seed)
    return _CACHE[key]


def log_mel_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and std of all log-mel values (float64 sums, in chunks)."""
    total, sq, n = 0.0, 0.0, 0
    for i in range(0, len(x), 4096):
        c = x[i:i + 4096].double()
        total, sq, n = total + float(c.sum()), sq + float((c * c).sum()), n + c.numel()
    mean = total / n
    return round(mean, 6), round(max((sq / n - mean * mean), 1e-12) ** 0.5, 6)


# -- settings -------------------------------------------------------------------------------------
@dataclasses.dataclass
class AudioData(suite.DataSettings):
    """data: the clips, their log-mel spectrograms and the patches cut from them"""

    dataset: str = "chords"
    """chords (synthesised chord qualities) | folder (WAV/FLAC files in class subfolders) | speechcommands"""
    root: Optional[str] = None
    """data directory for folder and speechcommands"""
    download: bool = False
    """fetch speechcommands into root (needs network)"""
    sample_rate: int = 16000
    """files at other rates are resampled to this"""
    clip_seconds: Optional[float] = None
    """null: 0.5 for chords, 1.0 otherwise; longer clips are centre-cropped, shorter zero-padded"""
    n_fft: int = 2048
    """FFT size: 2048 is 128 ms windows, 7.8 Hz bins, a semitone apart from C3 up"""
    hop_length: int = 256
    """samples between spectrogram frames"""
    n_mels: int = 128
    """mel bins"""
    f_min: float = 40.0
    """lowest mel frequency (Hz)"""
    f_max: Optional[float] = 4000.0
    """highest mel frequency (Hz); null: sample_rate / 2"""
    patch_freq: int = 8
    """mel bins per patch"""
    patch_time: int = 16
    """frames per patch"""
    train_size: int = 8000
    """chords only: training clips"""
    val_size: int = 1000
    """chords only: validation clips"""
    test_size: int = 2000
    """chords only: test clips"""
    val_fraction: float = 0.1
    """folder: of the training files (of all files without train/ and test/ subfolders)"""
    test_fraction: float = 0.2
    """folder without train/ and test/ subfolders"""
    batch_size: int = 64
    """training samples per optimiser step (per device)"""


# -- the task ---------------------------------------------------------------------------------
class AudioTask(suite.ClassificationTask):
    name = "audio"
    domain = "audio"
    description = "clip classification (synthesised chord qualities, a WAV/FLAC folder, SpeechCommands) with spectrogram patches"
    tokenizer_class = AudioTokenizer
    settings = {"data": AudioData, "model": suite.ClassifierSettings}

    def prepare_data(self, cfg):
        """Features of the synthesised chords or SpeechCommands (downloaded first if asked), cached once."""
        d, seed = cfg["data"], int(cfg["seed"])
        path = feature_cache(d, seed)
        if d["dataset"] in CACHED_DATASETS and not feature_cache_ok(path):  # missing, or damaged: made (again)
            write_features(path, compute_features(d, seed))

    def build_tokenizer(self, cfg):
        d = cfg["data"]
        data = features_for(d, int(cfg["seed"]))
        mean, std = log_mel_stats(data.features["train"])
        return tokenizer_from_config(d, data.classes, mean, std)

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.PatchAdapter(tokenizer.patch_dim, d_model, tokenizer.grid, cfg["backbone"]["max_len"],
                                  f"{tokenizer.n_mels} mel bins x {tokenizer.frames} frames",
                                  "raise --data.patch_time or --data.patch_freq")

    def build_data(self, tokenizer, cfg):
        d = cfg["data"]
        data = features_for(d, int(cfg["seed"]))
        if list(data.classes) != list(tokenizer.classes):
            raise suite.SuiteError(f"data set {d['dataset']!r} has classes {data.classes[:6]}, "
                                   f"the run's tokenizer {tokenizer.classes[:6]}")
        # float16 halves the memory of the patches; items are float32
        return {s: suite.PatchSet(tokenizer.patches, data.features[s], data.labels[s], dtype=torch.half)
                for s in ("train", "val", "test")}

    def predict_batch(self, model, text, options):
        wave = read_audio(Path(text), model.tokenizer.sample_rate)
        return {"inputs": model.tokenizer.encode(wave[None])}


@suite.hookimpl
def suite_register_tasks(register):
    register(AudioTask())
