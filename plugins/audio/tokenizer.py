"""The audio tokenizer: waveforms to normalised log-mel spectrogram patches (AST-style).

A mono waveform at ``sample_rate`` is cut or padded to ``clip_seconds``, turned into a log-mel
spectrogram with torchaudio (``n_mels`` bins, ``hop_length``), normalised with the training
set's mean and std (one scalar each, as in the Audio Spectrogram Transformer, ``log_mel_stats``)
and cut into non-overlapping ``patch_freq`` x ``patch_time`` patches.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

import suite

from .data import fit_length


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


def log_mel_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and std of all log-mel values (float64 sums, in chunks)."""
    total, sq, n = 0.0, 0.0, 0
    for i in range(0, len(x), 4096):
        c = x[i:i + 4096].double()
        total, sq, n = total + float(c.sum()), sq + float((c * c).sum()), n + c.numel()
    mean = total / n
    return round(mean, 6), round(max((sq / n - mean * mean), 1e-12) ** 0.5, 6)
