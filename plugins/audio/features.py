"""Log-mel features of a whole data set, computed once: kept on disk for the generated and the
published sets (``prepare_data`` writes them), and in memory for the next run in this process."""
from __future__ import annotations

import hashlib
import json
import sys

import suite

from .data import AudioSplits, load_audio
from .tokenizer import tokenizer_from_config

_CACHE: dict = {}
# Data sets whose features are kept on disk: generated, or a fixed published set. A folder of
# the user's own files is read afresh every run (its files may change).
CACHED_DATASETS = ("chords", "speechcommands", "spoken-digits")
# Settings that do not change the features (batches, workers, the training masks): not in the cache's key.
NOT_FEATURES = ("batch_size", "eval_batch_size", "num_workers", "spec_augment", "masks", "freq_mask", "time_mask")


def feature_settings(d: dict, seed: int) -> dict:
    settings = {"seed": seed, **{k: v for k, v in sorted(d.items()) if k not in NOT_FEATURES}}
    if d["dataset"] == "spoken-digits":  # the recipe of its files: a new one makes new features
        from .speech import VERSION

        settings["spoken_digits_version"] = VERSION
    return settings


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
