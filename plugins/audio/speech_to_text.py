"""The task ``speech-to-text``: an encoder-decoder in Whisper's shape on the shared backbone.

The encoder reads a clip's log-mel spectrogram (the audio tokenizer's features, normalised with the
training set's statistics) as patches of ``patch_time`` frames across all ``n_mels`` bins, one
token each, through suite's patch adapter; the decoder writes the transcript a character at a time
(PAD, BOS, EOS, then the characters of the training texts) and the shared objective
(``suite.Seq2Seq``) scores it by word and character error rate. Clips are zero-padded to one
length; the patches of that padding are hidden from attention (``source_padding``), which more
than halved the steps the spoken numbers need.

Data (stt_data.py): numbers spoken by espeak-ng voices, the text being their digits, with the test
split's voices held out; or recordings with transcripts, ``--data.pairs FILE``. ``suite eval RUN
--data.pairs FILE`` tests a trained run on every pair of FILE.
"""
from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Optional

import torch

import suite

from .augment import build_masks
from .data import read_audio
from .stt_data import (ClipSet, SpeechStream, make_spoken_numbers, padded, read_pairs, read_recordings, split_recordings,
                       spoken_numbers)
from .tokenizer import AudioTokenizer, log_mel_stats

SPLITS = ("train", "val", "test")
DIGITS = " 0123456789"  # in every alphabet: the spoken numbers' texts
STATS_CLIPS = 1000  # training clips the normalisation statistics are taken from


@dataclasses.dataclass
class SpeechTextData(suite.DataSettings):
    """data: the clips (spoken numbers, or recordings in a pairs file), their features and augmentation"""

    pairs: Optional[str] = None
    """a TSV of audio_path<TAB>text lines (paths relative to its folder): trained on, split by a hash of the path; with `suite eval RUN`, every pair is tested (null: spoken numbers)"""
    train_size: int = 12000
    """spoken numbers: training clips"""
    val_size: int = 200
    """spoken numbers: validation clips (voices of their own)"""
    test_size: int = 400
    """spoken numbers: test clips (held-out voices)"""
    max_digits: int = 4
    """spoken numbers: the longest number, in digits"""
    max_numbers: int = 2
    """spoken numbers: the most numbers said in one clip"""
    val_percent: float = 10.0
    """pairs: the share of pairs held out for validation (by a hash of the path)"""
    test_percent: float = 10.0
    """pairs: the share of pairs held out for the test"""
    sample_rate: int = 16000
    """recordings at other rates are resampled to this"""
    clip_seconds: float = 4.0
    """every clip is zero-padded to this; longer recordings are skipped"""
    n_fft: int = 512
    """FFT size (512: 32 ms windows; a power of two, twice as fast as 400)"""
    hop_length: int = 160
    """samples between spectrogram frames (160: 10 ms)"""
    n_mels: int = 80
    """mel bins"""
    f_min: float = 0.0
    """lowest mel frequency (Hz)"""
    f_max: Optional[float] = None
    """highest mel frequency (Hz); null: sample_rate / 2"""
    patch_freq: int = 80
    """mel bins per patch (n_mels: a token is a slice of time across all frequencies)"""
    patch_time: int = 4
    """frames per patch (4: a token every 40 ms)"""
    speed: Optional[bool] = None
    """speed perturbation of training clips (torchaudio's speed), a factor of `speeds` per clip; null: on for --data.pairs, off for the spoken numbers"""
    speeds: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])
    """speed perturbation: the factors drawn from"""
    noise: Optional[bool] = None
    """additive noise (white to brown) on training clips; null: on for --data.pairs, off for the spoken numbers"""
    noise_snr: list[float] = field(default_factory=lambda: [10.0, 40.0])
    """additive noise: the lowest and highest signal-to-noise ratio (dB), drawn uniformly"""
    spec_augment: Optional[bool] = None
    """SpecAugment masks on training spectrograms (torchaudio FrequencyMasking, TimeMasking); null: on for --data.pairs, off for the spoken numbers"""
    masks: int = 2
    """SpecAugment: frequency masks, and as many time masks, on each training clip"""
    freq_mask: int = 10
    """SpecAugment: the widest frequency mask, in mel bins"""
    time_mask: int = 10
    """SpecAugment: the widest time mask, in spectrogram frames"""
    batch_size: int = 32
    """training samples per optimiser step (per device)"""


@dataclasses.dataclass
class SpeechTextTokenizer(suite.Tokenizer):
    """Clips -> log-mel patches for the encoder (``audio``: the feature settings and the training
    statistics), text <-> character ids for the decoder (PAD=0, BOS=1, EOS=2, then ``alphabet``)."""

    audio: AudioTokenizer
    alphabet: str

    PAD, BOS, EOS = 0, 1, 2
    SPECIALS = 3

    def state(self):
        return {"audio": self.audio.state(), "alphabet": self.alphabet}

    @classmethod
    def from_state(cls, state):
        return cls(AudioTokenizer(**state["audio"]), state["alphabet"])

    @property
    def vocab_size(self) -> int:
        return self.SPECIALS + len(self.alphabet)

    def encode(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, L) clips -> (B, patches, patch_dim) normalised patches."""
        return self.audio.encode(waves)

    def encode_target(self, text: str) -> list[int]:
        """Character ids of ``text``; characters outside the alphabet are left out."""
        index = {c: i + self.SPECIALS for i, c in enumerate(self.alphabet)}
        return [index[c] for c in text if c in index]

    def decode_target(self, ids) -> str:
        return "".join(self.alphabet[i - self.SPECIALS] for i in ids if self.SPECIALS <= i < self.vocab_size)


def audio_tokenizer(d: dict, mean: float = 0.0, std: float = 1.0) -> AudioTokenizer:
    """The feature settings of ``d`` (normalised with ``mean`` and ``std``)."""
    f_max = d["f_max"] if d["f_max"] is not None else d["sample_rate"] / 2
    return AudioTokenizer(int(d["sample_rate"]), float(d["clip_seconds"]), int(d["n_fft"]), int(d["hop_length"]),
                          int(d["n_mels"]), float(d["f_min"]), float(f_max), int(d["patch_freq"]), int(d["patch_time"]),
                          mean, std, [])


def check(d: dict) -> None:
    """A clear error for data settings the data cannot be made with."""
    problems = [(not 1 <= int(d["max_digits"]) <= 6, f"data.max_digits must be 1..6, not {d['max_digits']}"),
                (int(d["max_numbers"]) < 1, f"data.max_numbers must be at least 1, not {d['max_numbers']}"),
                (min(int(d[f"{s}_size"]) for s in SPLITS) < 1, "data.train_size, val_size and test_size must be at least 1"),
                (len(d["noise_snr"]) != 2 or d["noise_snr"][0] > d["noise_snr"][1],
                 f"data.noise_snr must be [lowest, highest] dB, not {d['noise_snr']}"),
                (not d["speeds"] or min(d["speeds"]) <= 0, f"data.speeds must be positive factors, not {d['speeds']}"),
                (float(d["val_percent"]) + float(d["test_percent"]) >= 100, "data.val_percent + data.test_percent must leave pairs to train on")]
    for bad, message in problems:
        if bad:
            raise suite.SuiteError(message)


def augmented(d: dict, kind: str) -> bool:
    """Whether training clips get the augmentation ``kind`` (speed, noise, spec_augment): as set, or
    where it is null, for recordings of a pairs file only. The spoken numbers vary by voice, speed and
    pitch already, and each augmentation slows their training: a 2000-step run that reached 19% WER
    on held-out voices without any stayed at 82% with SpecAugment alone."""
    return bool(d[kind]) if d[kind] is not None else bool(d["pairs"])


class SpeechToTextTask(suite.Seq2SeqTask):
    name = "speech-to-text"
    domain = "audio"
    description = "speech recognition in Whisper's shape: log-mel patches in, characters out (numbers spoken by espeak-ng voices, or --data.pairs FILE)"
    tokenizer_class = SpeechTextTokenizer
    settings = {"data": SpeechTextData, "model": suite.Seq2SeqSettings}
    text_metrics = ("wer", "cer")

    def prepare_data(self, cfg):
        """The spoken numbers of every split, made into the cache once."""
        d = cfg["data"]
        check(d)
        if not d["pairs"]:
            for split in SPLITS:
                make_spoken_numbers(d, split, int(d[f"{split}_size"]))

    def clips(self, d: dict, audio: AudioTokenizer, splits=SPLITS) -> dict:
        """The clips of ``splits`` at the features' rate and length."""
        check(d)
        if d["pairs"]:
            every = read_recordings(d["pairs"], read_pairs(d["pairs"]), audio.sample_rate, audio.clip_samples)
            parts = split_recordings(every, float(d["val_percent"]), float(d["test_percent"]))
            return {s: parts[s] for s in splits}
        recipe = {**d, "clip_seconds": audio.clip_seconds}
        return {s: spoken_numbers(recipe, s, int(d[f"{s}_size"]), audio.sample_rate) for s in splits}

    def build_tokenizer(self, cfg):
        d = cfg["data"]
        audio = audio_tokenizer(d)
        train = self.clips(d, audio, ("train",))["train"]
        mels = [audio.log_mel(padded(train.waves[i:i + 250])[0]) for i in range(0, min(len(train.waves), STATS_CLIPS), 250)]
        mean, std = log_mel_stats(torch.cat(mels))
        alphabet = "".join(sorted(set(DIGITS) | set("".join(train.texts))))
        return SpeechTextTokenizer(dataclasses.replace(audio, mean=mean, std=std), alphabet)

    def build_adapter(self, tokenizer, d_model, cfg):
        a = tokenizer.audio
        source = suite.PatchAdapter(a.patch_dim, d_model, a.grid, cfg["backbone"]["max_len"],
                                    f"a {a.clip_seconds:g} s clip's {a.n_mels} mel bins x {a.frames} frames",
                                    "raise --data.patch_time or lower --data.clip_seconds")
        return suite.Seq2SeqAdapter(source=source, target=suite.EmbeddingAdapter(tokenizer.vocab_size, d_model))

    def build_data(self, tokenizer, cfg):
        d = cfg["data"]
        clips = self.clips(d, tokenizer.audio)
        d = {**d, **{k: augmented(d, k) for k in ("speed", "noise", "spec_augment")}}
        train = SpeechStream(tokenizer, clips["train"], d, build_masks(d), int(cfg["seed"]))
        return {"train": train, **{s: ClipSet(tokenizer, clips[s]) for s in ("val", "test")}}

    def build_eval_data(self, tokenizer, cfg):
        """With ``data.pairs``: every pair of the file as the test split; else the spoken numbers' val and test."""
        d, a = cfg["data"], tokenizer.audio
        if d["pairs"]:
            return {"test": ClipSet(tokenizer, read_recordings(d["pairs"], read_pairs(d["pairs"]), a.sample_rate, a.clip_samples))}
        return {s: ClipSet(tokenizer, c) for s, c in self.clips(d, a, ("val", "test")).items()}

    def collate(self, samples):
        """The shared layout, and ``source_padding``: True at the patches of pure digital silence, the
        zero padding after a clip's end (every value of such a patch is the same), so that attention
        skips them; never at the [CLS] vector the adapter puts first."""
        batch = super().collate(samples)
        x = batch["source"]  # (B, N, patch_dim)
        silent = x.amax(-1) == x.amin(-1)
        batch["source_padding"] = torch.cat([torch.zeros(len(x), 1, dtype=torch.bool), silent], 1)
        return batch

    def source_sample(self, tokenizer, raw):
        """An audio file's patches (the encoder's input)."""
        a = tokenizer.audio
        wave = read_audio(Path(raw), a.sample_rate)
        if len(wave) > a.clip_samples:
            raise suite.SuiteError(f"{raw}: {len(wave) / a.sample_rate:.2f} s of audio, longer than the run's "
                                   f"{a.clip_seconds:g} s clip")
        return tokenizer.encode(wave[None])[0]
