"""Audio data sets as mono waveforms at the task's sample rate, cut or padded to one clip length.

chords          chord qualities synthesised with torch (synth.py): the default, no files, no network
folder          --data.root/<class>/<file>.wav|.flac (or train/, test/ and optionally val/
                subfolders laid out that way); other sample rates are resampled, several
                channels are averaged, unreadable files are skipped, counted and reported
speechcommands  torchaudio's SPEECHCOMMANDS under --data.root (SpeechCommands/speech_commands_v0.02),
                its own training / validation / testing lists; --data.download true fetches it
hf:NAME_OR_PATH a Hugging Face data set (suite.hf_datasets): --data.audio_column's files or stored
                bytes, read, resampled and cut as folder files are; --data.label_column
spoken-digits   "zero".."nine" said by espeak-ng voices (speech.py), made once into the cache as a
                folder of WAV files with train/, val/ and test/ subfolders; test voices are held out

Files are read with soundfile (libsndfile: WAV, FLAC, OGG, ...), not torchaudio.load, which
from torchaudio 2.9 needs torchcodec and FFmpeg.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

import suite

from .synth import QUALITIES, synthesise

DATASETS = ("chords", "folder", "speechcommands", "spoken-digits")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


@dataclass
class AudioSplits:
    classes: list[str]
    features: dict[str, torch.Tensor]  # split -> (N, n_mels, frames) float16 log-mel spectrograms
    labels: dict[str, torch.Tensor]  # split -> (N,) long
    skipped: int = 0


def feature_cache_ok(path) -> bool:
    """Whether ``path`` holds a whole feature cache: a safetensors file (its header covers the whole
    file, so a truncated one fails here) with the classes in its metadata and the features and labels
    of train, val and test. A missing file is not; a damaged or older one is not either, with a warning
    naming it: the features are computed again (a cache is never an error). Reads no tensor."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), "pt") as f:
            meta, keys = f.metadata() or {}, set(f.keys())
        classes = json.loads(meta["classes"])
        int(meta["skipped"])
        missing = sorted({f"{kind}.{split}" for kind in ("features", "labels") for split in ("train", "val", "test")} - keys)
        if not isinstance(classes, list) or missing:
            raise ValueError(f"no {missing[0]}" if missing else "no class list")
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        reason = f"no {e.args[0]!r} in its metadata" if isinstance(e, KeyError) else str(e).splitlines()[0] or type(e).__name__
        print(f"suite: warning: {path}: damaged audio feature cache ({reason}); the features are computed again",
              file=sys.stderr)
        return False
    return True


def read_audio(path, sample_rate: int) -> torch.Tensor:
    """One audio file (a path, or a binary file object whose ``name`` messages give) -> mono float
    waveform (L,) at ``sample_rate``; SuiteError if unreadable."""
    import soundfile as sf
    import torchaudio.functional as AF

    if isinstance(path, (str, Path)):
        path = Path(path)
        if not path.exists():
            raise suite.SuiteError(f"{path}: no such audio file")
        if path.is_dir():
            raise suite.SuiteError(f"{path}: is a directory, not an audio file")
        source = str(path)
    else:
        source, path = path, path.name
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)  # (L, channels)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as e:
        reason = getattr(e, "error_string", None) or str(e) or type(e).__name__
        raise suite.SuiteError(f"{path}: not a readable audio file ({reason})") from None
    if data.shape[0] == 0:
        raise suite.SuiteError(f"{path}: audio file holds no samples")
    wave = torch.from_numpy(data).mean(1)
    if not torch.isfinite(wave).all():
        raise suite.SuiteError(f"{path}: audio file holds NaN or infinite samples")
    if sr != sample_rate:
        wave = AF.resample(wave, sr, sample_rate)
    return wave


def fit_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Centre crop or zero-pad at the end to ``length`` samples."""
    if wave.shape[-1] > length:
        start = (wave.shape[-1] - length) // 2
        return wave[..., start:start + length]
    return torch.nn.functional.pad(wave, (0, length - wave.shape[-1]))


def read_many(files: list[tuple[Path, int]], featurize, sample_rate: int, length: int, where: str, chunk: int = 256):
    """Decode (path, label) pairs and turn them into features ``chunk`` clips at a time (only the
    features are kept); unreadable files are skipped and reported once, with a count."""
    feats, waves, labels, bad = [], [], [], []
    for path, label in files:
        try:
            waves.append(fit_length(read_audio(path, sample_rate), length))
            labels.append(label)
        except suite.SuiteError as e:
            bad.append(str(e))
        if len(waves) == chunk:
            feats.append(featurize(torch.stack(waves)))
            waves = []
    if waves:
        feats.append(featurize(torch.stack(waves)))
    if bad:
        print(f"suite: audio: skipped {len(bad)} unreadable file(s) in {where}; first: {bad[0]}", file=sys.stderr)
    if not labels:
        raise suite.SuiteError(f"{where}: none of the {len(files)} audio files could be read")
    return torch.cat(feats), torch.tensor(labels, dtype=torch.long), len(bad)



def load_folder(d: dict, featurize, sample_rate: int, length: int, seed: int) -> AudioSplits:
    if not d.get("root"):
        raise suite.SuiteError("--data.dataset folder needs --data.root DIR (a folder with one subfolder per class)")
    root = Path(d["root"]).expanduser()
    classes, found = suite.class_folders(root, AUDIO_SUFFIXES, "audio")
    parts, skipped = {}, 0
    for split, files in found.items():
        pairs = [(p, classes.index(c)) for c, paths in files.items() for p in paths]
        where = str(root if split == "all" else root / split)
        x, y, n_bad = read_many(pairs, featurize, sample_rate, length, where)
        parts[split], skipped = (x, y), skipped + n_bad
    splits = suite.complete_splits(parts, float(d["val_fraction"]), float(d["test_fraction"]), seed)
    return AudioSplits(classes, {s: x for s, (x, _) in splits.items()}, {s: y for s, (_, y) in splits.items()}, skipped)


def load_hf(d: dict, featurize, sample_rate: int, length: int, seed: int) -> AudioSplits:
    """A Hugging Face data set: its audio cells (stored bytes or file paths) read, resampled and cut
    as folder files are."""
    data = suite.hf_datasets.load_labelled(d["dataset"], d["split"], d["audio_column"], d["label_column"],
                                           lambda source, where: fit_length(read_audio(source, sample_rate), length),
                                           lambda waves: featurize(torch.stack(waves)), "audio")
    splits = suite.complete_splits(data.parts, float(d["val_fraction"]), float(d["test_fraction"]), seed)
    return AudioSplits(data.classes, {s: x for s, (x, _) in splits.items()}, {s: y for s, (_, y) in splits.items()},
                       data.skipped)


def load_speechcommands(d: dict, featurize, sample_rate: int, length: int) -> AudioSplits:
    from torchaudio.datasets import SPEECHCOMMANDS

    if not d.get("root"):
        raise suite.SuiteError("--data.dataset speechcommands needs --data.root DIR (add --data.download true to fetch it there)")
    root = Path(d["root"]).expanduser()
    if d["download"]:
        root.mkdir(parents=True, exist_ok=True)
    feats, labels, skipped, classes = {}, {}, 0, None
    for split, subset in (("train", "training"), ("val", "validation"), ("test", "testing")):
        try:
            ds = SPEECHCOMMANDS(str(root), download=bool(d["download"]), subset=subset)
        except (RuntimeError, OSError) as e:
            hint = "" if d["download"] else " (pass --data.download true to fetch it)"
            raise suite.SuiteError(f"{root}: SPEECHCOMMANDS not found or unreadable: {e}{hint}") from None
        meta = [ds.get_metadata(i) for i in range(len(ds))]  # (relative path, rate, label, speaker, n)
        if classes is None:
            classes = sorted({m[2] for m in meta})
            if not classes:
                raise suite.SuiteError(f"{ds._path}: the SPEECHCOMMANDS training subset is empty")
        index = {c: i for i, c in enumerate(classes)}
        pairs = [(Path(ds._archive) / m[0], index[m[2]]) for m in meta if m[2] in index]
        if not pairs:
            raise suite.SuiteError(f"{ds._path}: the SPEECHCOMMANDS {subset} subset is empty")
        feats[split], labels[split], n_bad = read_many(pairs, featurize, sample_rate, length, f"{ds._path} ({subset})")
        skipped += n_bad
    return AudioSplits(classes, feats, labels, skipped)


def load_chords(d: dict, featurize, sample_rate: int, seconds: float, seed: int, chunk: int = 512) -> AudioSplits:
    feats, labels = {}, {}
    for k, split in enumerate(("train", "val", "test")):
        n, parts, ys = int(d[f"{split}_size"]), [], []
        for j, start in enumerate(range(0, n, chunk)):
            # a seed per split and chunk: no clip is shared between training and evaluation
            x, y = synthesise(min(chunk, n - start), sample_rate, seconds, (seed * 10 + k) * 100_003 + j)
            parts.append(featurize(x))
            ys.append(y)
        feats[split], labels[split] = torch.cat(parts), torch.cat(ys)
    return AudioSplits(list(QUALITIES), feats, labels)


def load_audio(d: dict, featurize, sample_rate: int, seconds: float, seed: int) -> AudioSplits:
    """The configured data set as features: ``featurize`` maps waveforms (B, L) to (B, ...)."""
    name = d["dataset"]
    length = int(round(sample_rate * seconds))
    if name.startswith("hf:"):
        return load_hf(d, featurize, sample_rate, length, seed)
    if name not in DATASETS:
        raise suite.SuiteError(f"data.dataset must be one of {', '.join(DATASETS)} or hf:NAME_OR_PATH, not {name!r}")
    if name == "chords":
        return load_chords(d, featurize, sample_rate, seconds, seed)
    if name == "folder":
        return load_folder(d, featurize, sample_rate, length, seed)
    if name == "spoken-digits":
        from .speech import spoken_digits

        return load_folder({**d, "root": str(spoken_digits(d))}, featurize, sample_rate, length, seed)
    return load_speechcommands(d, featurize, sample_rate, length)
