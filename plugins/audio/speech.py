"""Spoken digits made with espeak-ng: the audio task's built-in speech set (``--data.dataset spoken-digits``).

The words "zero" to "nine", each said ``clips_per_voice`` times by every voice of ``VOICES`` (an
English accent of espeak-ng with a voice variant of its own) at a random speed (130..210 words a
minute), pitch (15..85 of 0..99) and loudness. A clip is espeak-ng's output without its trailing
pause, after a random lead-in of 0..0.25 s of silence (less for a long word: a clip lasts at most
1 s), with faint white noise (30..50 dB SNR), resampled from espeak-ng's 22,050 Hz to 16 kHz (the
task's default rate, so reading the files needs no resampling) and written as 16-bit WAV.
Each voice belongs to one split: the test split is ``TEST_VOICES``, validation ``VAL_VOICES``,
training the others, so the test accuracy is on voices training never heard. The draws are keyed
by voice, word and rendition, so a set is the same on every machine with the same espeak-ng.

The set is made once, on first use, into ``suite.cache_dir("audio")/spoken-digits-v2-c<clips>/``
as a folder of WAV files that ``--data.dataset folder`` reads as well:
``{train,val,test}/<word>/<voice>-<i>.wav`` and ``manifest.json`` (every clip's voice, speed,
pitch, lead-in and noise, and the espeak-ng version).
"""
from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import suite

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# espeak-ng voice names, "<accent>+<variant>"; no variant is used twice, so a held-out voice is a new
# speaker, not a known one in another accent.
TRAIN_VOICES = (
    "en-us+m1", "en-gb+m2", "en-gb-scotland+m3", "en-029+m4", "en-us-nyc+m6", "en-gb-x-rp+m7",
    "en-gb-x-gbclan+f1", "en-gb-x-gbcwmd+f2", "en-us+f4", "en-gb+klatt", "en-gb-scotland+klatt3",
    "en-029+Andy", "en-us-nyc+Annie", "en-gb-x-rp+david",
)
VAL_VOICES = ("en-us+m8", "en-gb+f5")
TEST_VOICES = ("en-gb-x-rp+f3", "en-us+m5", "en-029+klatt2", "en-gb-scotland+Alex")
VOICES = {"train": TRAIN_VOICES, "val": VAL_VOICES, "test": TEST_VOICES}
ESPEAK_RATE = 22050  # espeak-ng's output rate
RATE = 16000  # the files'
VERSION = 2  # of the recipe above: part of the folder's name, so a changed recipe makes a new set
ESPEAK_PLACES = ("/usr/bin/espeak-ng", "/usr/local/bin/espeak-ng")  # looked in when it is not on the PATH


def find_espeak(needed_by: str = "--data.dataset spoken-digits") -> str:
    """The espeak-ng program; ``needed_by`` names what needs it in the error when it is missing."""
    found = shutil.which("espeak-ng") or next((p for p in ESPEAK_PLACES if Path(p).is_file()), None)
    if found is None:
        raise suite.SuiteError(f"{needed_by} is made with espeak-ng, which was not found; "
                               "install it (`apt-get install espeak-ng`)")
    return found


def espeak_version(espeak: str) -> str:
    out = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=False).stdout
    return out.split(":")[1].split()[0] if ":" in out else out.strip()


def say(espeak: str, word: str, voice: str, key: str, seconds: float = 1.0) -> tuple[np.ndarray, dict]:
    """One rendition of ``word`` (a word, or a phrase) by ``voice``: (float32 samples at ESPEAK_RATE,
    its draws), every draw keyed by ``key``. The random lead-in shrinks so that the clip stays within
    ``seconds`` where the speech leaves room (the speech itself is never cut)."""
    import soundfile as sf

    rng = random.Random(key)  # a str seed is hashed with SHA-512: the same draws in every process
    speed, pitch = rng.randint(130, 210), rng.randint(15, 85)
    done = subprocess.run([espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                          capture_output=True, check=False)
    if done.returncode or not done.stdout:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise suite.SuiteError(f"espeak-ng -v {voice} failed on {word!r}: {reason[0] if reason else 'no output'}")
    wave, rate = sf.read(io.BytesIO(done.stdout), dtype="float32")
    if rate != ESPEAK_RATE:  # another build of espeak-ng: brought to the rate resample() expects
        import torch
        import torchaudio.functional as AF

        wave, rate = AF.resample(torch.from_numpy(wave), rate, ESPEAK_RATE).numpy(), ESPEAK_RATE
    loud = np.flatnonzero(np.abs(wave) > 0.01 * np.abs(wave).max())
    wave = wave[: loud[-1] + int(0.05 * rate)] if len(loud) else wave  # no trailing pause
    lead = rng.uniform(0.0, 0.25) * min(1.0, max(0.0, seconds - 0.02 - len(wave) / rate) / 0.25)  # the clip stays within `seconds`
    wave = np.concatenate([np.zeros(int(lead * rate), np.float32), wave])
    wave = wave / max(float(np.abs(wave).max()), 1e-6) * rng.uniform(0.3, 0.9)
    snr = rng.uniform(30, 50)
    noise = np.random.default_rng(rng.getrandbits(63)).standard_normal(len(wave)).astype(np.float32)
    wave = wave + noise * float(np.sqrt(np.mean(wave ** 2))) * 10 ** (-snr / 20)
    draws = {"voice": voice, "word": word, "speed": speed, "pitch": pitch,
             "lead_s": round(lead, 3), "snr_db": round(snr, 1)}
    return wave, draws


def resample(waves: list[np.ndarray], chunk: int = 128) -> list[np.ndarray]:
    """Clips at ESPEAK_RATE -> int16 clips at RATE, ``chunk`` at a time through one Resample over
    zero-padded clips: its filter is made once, where torchaudio.functional.resample makes it for
    every clip (0.2 s a clip on 2 busy cores)."""
    import torch
    from torchaudio.transforms import Resample

    step, out = Resample(ESPEAK_RATE, RATE), []
    for start in range(0, len(waves), chunk):
        part = waves[start:start + chunk]
        padded = torch.zeros(len(part), max(len(w) for w in part))
        for i, w in enumerate(part):
            padded[i, :len(w)] = torch.from_numpy(w)
        with torch.no_grad():
            done = step(padded).clamp(-1, 1).mul(32767).to(torch.int16).numpy()
        out += [done[i, :len(w) * RATE // ESPEAK_RATE] for i, w in enumerate(part)]
    return out


def spoken_digits(d: dict) -> Path:
    """The folder of the set these settings ask for, made first if it is not there yet (under a file
    lock; written to a temporary folder and renamed into place, so a killed process leaves none)."""
    import soundfile as sf

    clips = int(d["clips_per_voice"])
    if clips < 1:
        raise suite.SuiteError(f"data.clips_per_voice must be at least 1, not {clips}")
    root = suite.cache_dir("audio", d.get("cache_dir")) / f"spoken-digits-v{VERSION}-c{clips}"
    if (root / "manifest.json").is_file():
        return root
    with suite.file_lock(root):
        if (root / "manifest.json").is_file():  # made by another process while this one waited
            return root
        espeak = find_espeak()
        jobs = [(split, word, voice, i) for split, voices in VOICES.items() for voice in voices
                for word in WORDS for i in range(clips)]
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # espeak-ng runs in subprocesses
            made = list(pool.map(lambda job: say(espeak, job[1], job[2], "spoken-digits/{2}/{1}/{3}".format(*job)), jobs))
        tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        manifest = []
        waves = resample([wave for wave, _ in made])
        for (split, word, voice, i), wave, (_, draws) in zip(jobs, waves, made):
            path = Path(split) / word / f"{voice.replace('+', '_')}-{i}.wav"
            (tmp / path).parent.mkdir(parents=True, exist_ok=True)
            sf.write(tmp / path, wave, RATE, subtype="PCM_16")
            manifest.append({"path": str(path), "split": split, **draws})
        manifest = {"espeak_ng": espeak_version(espeak), "clips": manifest}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(root, ignore_errors=True)  # a partial folder of an older process, if any
        tmp.rename(root)
    return root
