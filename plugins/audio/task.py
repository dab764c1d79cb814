"""The audio task: clip classification with spectrogram patches on the shared backbone."""
from __future__ import annotations

from pathlib import Path

import torch

import suite

from .augment import TrainStream, build_masks
from .data import feature_cache_ok, read_audio
from .features import CACHED_DATASETS, compute_features, feature_cache, features_for, write_features
from .settings import AudioData
from .tokenizer import AudioTokenizer, log_mel_stats, tokenizer_from_config


class AudioTask(suite.ClassificationTask):
    name = "audio"
    domain = "audio"
    description = "clip classification (synthesised chord qualities, espeak-ng spoken digits, a WAV/FLAC folder, SpeechCommands) with spectrogram patches"
    tokenizer_class = AudioTokenizer
    settings = {"data": AudioData, "model": suite.ClassifierSettings}

    def prepare_data(self, cfg):
        """Features of the synthesised chords, the spoken digits (their WAV files made first) or SpeechCommands
        (downloaded first if asked), cached once."""
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
        masks = build_masks(d)
        out = {}
        for s in ("train", "val", "test"):
            if s == "train" and masks is not None:  # SpecAugment: masked and cut into patches a batch at a time
                out[s] = TrainStream(tokenizer, data.features[s], data.labels[s], masks, int(cfg["seed"]))
            else:  # patches cut once; float16 halves their memory, items are float32
                out[s] = suite.PatchSet(tokenizer.patches, data.features[s], data.labels[s], dtype=torch.half)
        return out

    def predict_batch(self, model, text, options):
        wave = read_audio(Path(text), model.tokenizer.sample_rate)
        return {"inputs": model.tokenizer.encode(wave[None])}
