"""The speech-to-text task's data: spoken numbers made with espeak-ng, or recordings listed in a
pairs file; augmentation of training clips; the training stream and the evaluation sets.

Spoken numbers (the default). A clip says one or two numbers (``data.max_numbers``) of 1 to
``data.max_digits`` digits (the digit count drawn first, uniformly, so short and long numbers are
as common), in English words ("three thousand four hundred and twelve", the "and" of British
usage in half of them), separated by a comma's pause; its text is the digits ("3412", two numbers
"3412 56"), so the model both hears and normalises. Each clip is said by a voice, an English
accent of espeak-ng with a voice variant (the speaker), at a random speed, pitch and loudness,
with faint noise (speech.py's ``say``). Every variant belongs to one split: the test split's
voices (``TEST_VARIANTS``) and the validation split's are never heard in training. A clip that
does not fit in ``data.clip_seconds`` is drawn again. Clip i of a split is fixed by (split, i), so
the sets are the same on every machine with the same espeak-ng, whatever the run's seed.

Clips are made on first use into ``suite.cache_dir("audio")/speech-to-text-v<V>-<recipe>/``,
``CHUNK`` clips a file (16 kHz 16-bit samples and each clip's draws in safetensors), espeak-ng
running in parallel threads; a larger ``train_size`` later reuses the files already made.

Recordings (``--data.pairs FILE``). FILE lists ``audio_path<TAB>text`` lines (paths relative to
FILE's folder; blank lines are skipped). Pairs are split into train / val / test by a stable hash
of the path (``data.val_percent``, ``data.test_percent``). A missing or malformed FILE, or a listed
audio file that is missing or unreadable, is a ``suite.SuiteError`` naming the file and line; a
recording longer than the run's clip is skipped, counted and reported.

Augmentation of training clips, each drawn from the batch's generator: speed perturbation
(torchaudio's ``speed``, a factor of ``data.speeds`` per clip, kept at 1 where the clip would no
longer fit), additive noise (white to brown) at a random SNR in ``data.noise_snr`` dB, and
SpecAugment masks (augment.py); by default on for recordings, off for the spoken numbers
(speech_to_text.py's ``augmented``). Evaluation clips are never augmented. A clip shorter than
``clip_seconds`` is zero-padded after its end; the collate hides those patches from attention.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

import suite

from . import speech
from .data import read_audio

VERSION = 2  # of the recipe above: part of the cache folder's name
CHUNK = 500  # clips per cache file
TRIES = 8  # draws of a clip that must fit its length; the last one says a single one-digit number
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# espeak-ng voice variants (the speaker; robotic, whispering and croaking ones left out). Near-twins
# (edward / edward2, linda / belinda, f4 / aunty) are kept in one split, so a held-out speaker is a
# new one. Alicia trains: its unvoiced consonants are at a fifth of the others' loudness and its
# second formant half as high again, a voice unlike any other (57% of its clips wrong when held out,
# 4-12% of the other test voices').
TEST_VARIANTS = ("f3", "m5", "klatt2", "Alex", "Annie", "quincy")
VAL_VARIANTS = ("m8", "f5", "linda", "belinda")
TRAIN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m6", "m7", "f1", "f2", "f4", "klatt", "klatt3", "klatt4", "Alicia", "Andrea", "Andy",
    "adam", "aunty", "benjamin", "boris", "caleb", "david", "ed", "edward", "edward2", "gustave", "iven",
    "iven2", "john", "max", "michel", "norbert", "pablo", "paul", "rob", "robert", "sandro", "shelby", "steph",
    "steph2", "travis", "victor", "zac", "Diogo", "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco",
    "Mario", "Michael", "Mike", "Nguyen", "Denis", "antonio", "grandma", "grandpa", "anika", "kaukovalta",
    "marcelo", "miguel", "pedro", "Storm", "Tweaky", "RicishayMax",
)
VARIANTS = {"train": TRAIN_VARIANTS, "val": VAL_VARIANTS, "test": TEST_VARIANTS}
_RECORDINGS: dict = {}  # the recordings of the pairs file read last: {key: Clips}
ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


@dataclass
class Clips:
    """Clips of one split: 16-bit samples (one tensor a clip, at the task's rate) and their texts."""

    waves: list[torch.Tensor]  # (L_i,) int16 each
    texts: list[str]
    where: str  # what they came from, for messages
    keys: list[str] = field(default_factory=list)  # recordings: each one's path as the pairs file gives it

    def subset(self, rows: list[int]) -> "Clips":
        return Clips([self.waves[i] for i in rows], [self.texts[i] for i in rows], self.where,
                     [self.keys[i] for i in rows] if self.keys else [])


# -- spoken numbers ---------------------------------------------------------------------------------
def number_words(n: int, british: bool = True) -> str:
    """0 <= n < 1,000,000 in English words; ``british`` puts "and" before the tens and units."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"{n} is out of range")
    if n < 20:
        return ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return TENS[tens] + (f" {ONES[ones]}" if ones else "")
    big, rest, unit = (n // 100, n % 100, "hundred") if n < 1000 else (n // 1000, n % 1000, "thousand")
    words = f"{number_words(big, british)} {unit}"
    if not rest:
        return words
    return words + (" and " if british and rest < 100 else " ") + number_words(rest, british)


def draw_numbers(rng: random.Random, max_digits: int, max_numbers: int) -> list[int]:
    """1..max_numbers numbers, each with a digit count drawn uniformly from 1..max_digits."""
    out = []
    for _ in range(rng.randint(1, max_numbers)):
        digits = rng.randint(1, max_digits)
        out.append(rng.randrange(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits))
    return out


def speak_clip(espeak: str, split: str, i: int, d: dict):
    """Clip ``i`` of ``split``: (float32 samples at espeak-ng's rate, its draws with its ``text``),
    drawn again (up to TRIES times) until it fits in ``clip_seconds``."""
    seconds = float(d["clip_seconds"])
    for attempt in range(TRIES):
        key = f"speech-to-text/{split}/{i}/{attempt}"
        rng = random.Random(key + "/plan")
        numbers = draw_numbers(rng, int(d["max_digits"]), int(d["max_numbers"]))
        if attempt == TRIES - 1:
            numbers = [numbers[0] % 10]
        voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS[split])}"
        british = rng.random() < 0.5
        phrase = ", ".join(number_words(n, british) for n in numbers)
        wave, draws = speech.say(espeak, phrase, voice, key, seconds)
        if len(wave) <= seconds * speech.ESPEAK_RATE:
            return wave, {**draws, "text": " ".join(map(str, numbers))}
    raise suite.SuiteError(f"data.clip_seconds {seconds} is too short for a spoken digit; raise it")


def recipe_dir(d: dict) -> Path:
    """The cache folder of the clips these settings make."""
    recipe = f"d{int(d['max_digits'])}-n{int(d['max_numbers'])}-s{float(d['clip_seconds']):g}"
    return suite.cache_dir("audio", d.get("cache_dir")) / f"speech-to-text-v{VERSION}-{recipe}"


def make_chunk(path: Path, split: str, start: int, n: int, d: dict) -> None:
    """Clips start..start+n-1 of ``split`` into ``path`` (written aside and renamed into place)."""
    from safetensors.torch import save_file

    espeak = speech.find_espeak("the speech-to-text task's spoken numbers")
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # espeak-ng runs in subprocesses
        made = list(pool.map(lambda i: speak_clip(espeak, split, i, d), range(start, start + n)))
    waves = speech.resample([w for w, _ in made])  # int16 at speech.RATE
    lengths = torch.tensor([len(w) for w in waves])
    flat = torch.from_numpy(np.concatenate(waves))
    meta = {"espeak_ng": speech.espeak_version(espeak), "clips": json.dumps([m for _, m in made])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    save_file({"waves": flat, "lengths": lengths}, str(tmp), metadata=meta)
    tmp.replace(path)


def chunk_file(d: dict, split: str, c: int, n: int) -> Path:
    """A cache file holding at least the first ``n`` clips of chunk ``c`` of ``split``, made if none
    does; the smaller files of the chunk it replaces are removed."""
    folder = recipe_dir(d)
    made = sorted(folder.glob(f"{split}-{c:05d}-*.safetensors"))
    for path in made:
        if int(path.stem.rsplit("-", 1)[1]) >= n and chunk_ok(path):
            return path
    path = folder / f"{split}-{c:05d}-{n}.safetensors"
    with suite.file_lock(path):
        if not chunk_ok(path, quiet=True):
            make_chunk(path, split, c * CHUNK, n, d)
    for old in made:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def chunk_ok(path: Path, quiet: bool = False) -> bool:
    """Whether ``path`` is a whole cache file (a safetensors header covers the whole file, so a
    truncated one fails here); a damaged one is made again, with a warning naming it."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return False
    try:
        with safe_open(str(path), "pt") as f:
            if {"waves", "lengths"} - set(f.keys()) or "clips" not in (f.metadata() or {}):
                raise ValueError("no clips in it")
    except (SafetensorError, OSError, ValueError) as e:
        if not quiet:
            print(f"suite: warning: {path}: damaged speech-to-text cache ({str(e).splitlines()[0] or type(e).__name__}); "
                  "its clips are made again", file=sys.stderr)
        return False
    return True


def read_chunk(path: Path, n: int) -> tuple[list[torch.Tensor], list[str]]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        flat, lengths = f.get_tensor("waves").clone(), f.get_tensor("lengths")[:n]  # a copy: the file may be replaced
        texts = [c["text"] for c in json.loads(f.metadata()["clips"])[:n]]
    return list(flat[: int(lengths.sum())].split(lengths.tolist())), texts


def make_spoken_numbers(d: dict, split: str, n: int) -> list[tuple[Path, int]]:
    """The cache files of the first ``n`` clips of ``split``, made where missing: (file, clips to read) each."""
    return [(chunk_file(d, split, c, min(CHUNK, n - c * CHUNK)), min(CHUNK, n - c * CHUNK)) for c in range(math.ceil(n / CHUNK))]


def spoken_numbers(d: dict, split: str, n: int, rate: int) -> Clips:
    """The first ``n`` clips of ``split`` at ``rate`` Hz, made into the cache where missing."""
    waves, texts = [], []
    for path, m in make_spoken_numbers(d, split, n):
        w, t = read_chunk(path, m)
        waves, texts = waves + w, texts + t
    if rate != speech.RATE:
        import torchaudio.functional as AF

        waves = [to_int16(AF.resample(w.float() / 32768, speech.RATE, rate)) for w in waves]
    return Clips(waves, texts, f"{recipe_dir(d)} ({split})")


def to_int16(wave: torch.Tensor) -> torch.Tensor:
    return wave.clamp(-1, 1).mul(32767).round().to(torch.int16)


# -- recordings listed in a pairs file -------------------------------------------------------------
def read_pairs(file) -> list[tuple[int, str, str]]:
    """A pairs file -> (line number, audio path as written, text) per line; SuiteError if the file
    is missing or a line is not ``audio_path<TAB>text``."""
    file = Path(file).expanduser()
    if not file.is_file():
        raise suite.SuiteError(f"{file}: no such pairs file (audio_path<TAB>text lines)")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise suite.SuiteError(f"{file}: not a readable UTF-8 pairs file ({e})") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        path, tab, text = line.partition("\t")
        if not tab or "\t" in text or not path.strip() or not text.strip():
            raise suite.SuiteError(f"{file}, line {number}: expected audio_path<TAB>text, got {line[:60]!r}")
        pairs.append((number, path.strip(), " ".join(text.split())))
    if not pairs:
        raise suite.SuiteError(f"{file}: the pairs file lists no audio_path<TAB>text lines")
    return pairs


def read_recordings(file, pairs: list[tuple[int, str, str]], rate: int, samples: int) -> Clips:
    """The listed recordings at ``rate`` Hz; one that is missing or unreadable is a SuiteError naming
    the pairs file and line, one longer than ``samples`` is skipped, counted and reported. The last
    file read is kept in memory for the next call with the same pairs (the tokenizer, then the data)."""
    file = Path(file).expanduser()
    key = (str(file.resolve()), file.stat().st_mtime_ns, json.dumps(pairs), rate, samples)
    if key not in _RECORDINGS:
        _RECORDINGS.clear()
        _RECORDINGS[key] = decode_recordings(file, pairs, rate, samples)
    return _RECORDINGS[key]


def decode_recordings(file: Path, pairs: list[tuple[int, str, str]], rate: int, samples: int) -> Clips:
    waves, texts, keys, long = [], [], [], []
    for number, path, text in pairs:
        try:
            wave = read_audio(file.parent / path, rate)
        except suite.SuiteError as e:
            raise suite.SuiteError(f"{file}, line {number}: {e}") from None
        if len(wave) > samples:
            long.append(f"line {number}")
            continue
        waves.append(to_int16(wave))
        texts.append(text)
        keys.append(path)
    if long:
        print(f"suite: speech-to-text: skipped {len(long)} recording(s) of {file} longer than the "
              f"{samples / rate:g} s clip (raise --data.clip_seconds); first: {long[0]}", file=sys.stderr)
    if not waves:
        raise suite.SuiteError(f"{file}: none of its {len(pairs)} recordings fits in the {samples / rate:g} s clip")
    return Clips(waves, texts, str(file), keys)


def split_recordings(clips: Clips, val_percent: float, test_percent: float) -> dict[str, Clips]:
    """Recordings into train / val / test by a stable hash of their paths (suite.hash_split)."""
    rows = {"train": [], "val": [], "test": []}
    for i, key in enumerate(clips.keys):
        rows[suite.hash_split(key, val_percent, test_percent)].append(i)
    for split, percent in (("train", 100 - val_percent - test_percent), ("val", val_percent), ("test", test_percent)):
        if not rows[split]:
            raise suite.SuiteError(f"{clips.where}: none of its {len(clips.keys)} recordings falls in the {split} split "
                                   f"({percent:g}% of them, by a hash of the path); list more pairs"
                                   + ("" if split == "train" else f" or raise --data.{split}_percent"))
    return {split: clips.subset(r) for split, r in rows.items()}


# -- augmentation --------------------------------------------------------------------------------
def padded(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """int16 clips -> (B, max length) float samples in [-1, 1], zero-padded, and their lengths (B,)."""
    lengths = torch.tensor([len(w) for w in waves])
    x = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        x[i, :len(w)] = w.float() / 32768
    return x, lengths


def perturb_speed(x: torch.Tensor, lengths: torch.Tensor, rate: int, factors: list[float], limit: int,
                  g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip played ``factor`` times as fast (torchaudio's ``speed``: resampled, so pitch moves
    with it), a factor of ``factors`` drawn per clip; kept at 1 where the clip would pass ``limit`` samples."""
    import torchaudio.functional as AF

    factor = torch.tensor(factors, dtype=torch.float64)[torch.randint(len(factors), (len(x),), generator=g)]
    factor = torch.where(lengths / factor > limit, torch.ones_like(factor), factor)
    parts, new_lengths = [None] * len(x), lengths.clone()
    for f in factor.unique().tolist():
        rows = (factor == f).nonzero().flatten()
        if f == 1.0:
            out, n = x[rows], lengths[rows]
        else:
            out, n = AF.speed(x[rows], rate, f, lengths[rows])
        for j, r in enumerate(rows.tolist()):
            parts[r], new_lengths[r] = out[j, : int(n[j])], int(n[j])
    return torch.nn.utils.rnn.pad_sequence(parts, batch_first=True), new_lengths


def add_noise(x: torch.Tensor, lengths: torch.Tensor, snr: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    """Noise over each clip's samples (none in its padding), between white and brown (a random mix),
    at an SNR drawn uniformly from ``snr`` dB (torchaudio's ``add_noise``)."""
    import torchaudio.functional as AF

    B, L = x.shape
    white = torch.randn(B, L, generator=g)
    brown = white.cumsum(1)
    brown = brown - brown.mean(1, keepdim=True)
    mix = torch.rand(B, 1, generator=g)
    noise = mix * white / white.std(1, keepdim=True) + (1 - mix) * brown / brown.std(1, keepdim=True).clamp_min(1e-8)
    inside = torch.arange(L)[None] < lengths[:, None]
    low, high = snr
    db = low + (high - low) * torch.rand(B, generator=g)
    return AF.add_noise(x, noise * inside, db, lengths)


# -- data sets -------------------------------------------------------------------------------------
class ClipSet(Dataset):
    """An evaluation split: each clip's patches, cut once (float16, served as float32), and its text.
    Items are the sequence-to-sequence samples ``{"source", "target", "references"}``."""

    def __init__(self, tokenizer, clips: Clips, chunk: int = 256):
        self.tokenizer, self.texts = tokenizer, clips.texts
        self.patches = torch.cat([tokenizer.encode(padded(clips.waves[i:i + chunk])[0]).half()
                                  for i in range(0, len(clips.waves), chunk)])

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        text = self.texts[i]
        return {"source": self.patches[i].float(), "target": self.tokenizer.encode_target(text), "references": [text]}


class SpeechStream(suite.Stream):
    """Shuffled training clips, augmented (speed, noise, SpecAugment, as ``d`` turns them on) and cut
    into patches a batch at a time. Every draw comes from the batch's generator; the SpecAugment
    masks (torchaudio draws them from torch's global RNG) from a fork of it seeded by that
    generator, so a resumed run sees the augmentation of the whole one. Without speed or noise, the
    clips' spectrograms are computed once, up front (float16): a batch is then read, not computed."""

    def __init__(self, tokenizer, clips: Clips, d: dict, masks: list | None, seed: int, chunk: int = 256):
        super().__init__(seed)
        self.tokenizer, self.texts, self.waves, self.masks = tokenizer, clips.texts, clips.waves, masks
        self.speeds = [float(f) for f in d["speeds"]] if d["speed"] else None
        self.snr = tuple(float(s) for s in d["noise_snr"]) if d["noise"] else None
        self.mels = None
        if not (self.speeds or self.snr):
            self.mels = torch.cat([tokenizer.audio.log_mel(padded(clips.waves[i:i + chunk])[0])
                                   for i in range(0, len(clips.waves), chunk)])  # (N, n_mels, frames)
            self.waves = None  # not read again

    def size(self):
        return len(self.texts)

    def log_mel(self, idx: list[int], generator: torch.Generator) -> torch.Tensor:
        """The clips ``idx`` -> (B, n_mels, frames) log-mel spectrograms, sped up or slowed down and
        noised as set."""
        if self.mels is not None:
            return self.mels[idx].float()
        audio = self.tokenizer.audio
        x, lengths = padded([self.waves[i] for i in idx])
        if self.speeds:
            x, lengths = perturb_speed(x, lengths, audio.sample_rate, self.speeds, audio.clip_samples, generator)
        if self.snr:
            x = add_noise(x, lengths, self.snr, generator)
        return audio.log_mel(x).float()

    def samples(self, indices, generator):
        idx = indices.tolist()
        mel = self.log_mel(idx, generator)
        if self.masks:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(generator.initial_seed())
                for mask in self.masks:
                    mel = mask(mel, self.tokenizer.audio.mean)
        texts = [self.texts[i] for i in idx]
        return [{"source": p, "target": self.tokenizer.encode_target(t), "references": [t]}
                for p, t in zip(self.tokenizer.audio.patches(mel), texts)]
