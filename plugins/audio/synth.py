"""Chord-quality clips synthesised with torch: the audio task's built-in data set.

Each clip is one chord: a quality (the label) over a random root, in a random inversion,
optionally with the root doubled an octave below, played by a random timbre (a harmonic mix
with a random spectral slope and odd/even balance, slight per-note detuning, an attack and an
exponential decay, a random onset) over white or brown background noise at a random SNR.
Everything is drawn from one ``torch.Generator``, so a seed gives the same clips everywhere.
"""
from __future__ import annotations

import math

import torch

# Semitones above the root. Qualities whose pitch-class sets are transpositions of each other
# (sus2 = sus4 of the fifth, major 6th = minor 7th of the sixth) would be ambiguous once
# inverted, so only one of each pair is used.
QUALITIES: dict[str, list[int]] = {
    "major": [0, 4, 7],
    "minor": [0, 3, 7],
    "diminished": [0, 3, 6],
    "augmented": [0, 4, 8],
    "suspended4": [0, 5, 7],
    "dominant7": [0, 4, 7, 10],
    "major7": [0, 4, 7, 11],
    "minor7": [0, 3, 7, 10],
    "diminished7": [0, 3, 6, 9],
}
MAX_HARMONICS = 8
PERIOD = 4096  # wavetable length: a nearest-sample lookup is then ~60 dB clean


def chord_notes(quality: torch.Tensor, root: torch.Tensor, inversion: torch.Tensor, g: torch.Generator):
    """MIDI pitches (B, 5) and a mask of the sounding ones: the chord in its inversion, plus a
    doubled root an octave below in about a third of the clips."""
    table = torch.full((len(QUALITIES), 4), -1)
    for i, steps in enumerate(QUALITIES.values()):
        table[i, :len(steps)] = torch.tensor(steps)
    steps = table[quality]  # (B, 4), -1 where a triad has no 4th note
    present = steps >= 0
    order = torch.arange(4).expand_as(steps)
    n_notes = present.sum(1, keepdim=True)
    inv = inversion.unsqueeze(1) % n_notes  # the lowest `inv` notes go up an octave
    pitches = root.unsqueeze(1) + steps.clamp_min(0) + 12 * (order < inv)
    bass = (torch.rand(len(root), generator=g) < 0.35).unsqueeze(1)
    pitches = torch.cat([pitches, root.unsqueeze(1) - 12], 1)
    present = torch.cat([present, bass], 1)
    return pitches.float(), present


def synthesise(n: int, sample_rate: int, seconds: float, seed: int, chunk: int = 256):
    """``n`` clips (n, samples) in [-1, 1] and their quality labels (n,)."""
    g = torch.Generator().manual_seed(seed)
    L = int(round(sample_rate * seconds))
    waves, labels = torch.empty(n, L), torch.empty(n, dtype=torch.long)
    t = torch.arange(L) / sample_rate  # (L,)
    h = torch.arange(1, MAX_HARMONICS + 1).float()  # (H,)
    for start in range(0, n, chunk):
        B = min(chunk, n - start)
        quality = torch.randint(len(QUALITIES), (B,), generator=g)
        root = torch.randint(48, 68, (B,), generator=g)  # C3 .. G4
        pitches, present = chord_notes(quality, root, torch.randint(4, (B,), generator=g), g)
        cents = (torch.rand(B, 5, generator=g) - 0.5) * 20  # +-10 cents
        f0 = 440.0 * 2 ** ((pitches - 69 + cents / 100) / 12)  # (B, 5) Hz
        # timbre: amplitude of harmonic k ~ k^-slope, an odd/even balance, a random harmonic count
        # kept below the Nyquist frequency for the chord's highest note (no aliasing)
        slope = 0.5 + 1.5 * torch.rand(B, 1, generator=g)
        even = 0.2 + 0.8 * torch.rand(B, 1, generator=g)
        top = (f0 * present).amax(1, keepdim=True)
        n_harm = torch.minimum(torch.randint(3, MAX_HARMONICS + 1, (B, 1), generator=g),
                               (sample_rate / 2 / top).floor().clamp_min(1))
        amp = h.pow(-slope) * torch.where(h % 2 == 0, even, torch.ones(1)) * (h <= n_harm)  # (B, H)
        # one period of the timbre's waveform (B, P), read by every note at its own phase: a
        # wavetable oscillator costs one lookup per note and sample instead of a sine per harmonic
        phase = 2 * math.pi * torch.rand(B, MAX_HARMONICS, 1, generator=g)
        grid = 2 * math.pi * torch.arange(PERIOD) / PERIOD  # (P,)
        table = torch.einsum("bh,bhp->bp", amp, torch.sin(h.view(1, -1, 1) * grid + phase))
        offset = torch.rand(B, 5, 1, generator=g)
        idx = ((f0.unsqueeze(-1) * t + offset).frac_().mul_(PERIOD)).long().clamp_(max=PERIOD - 1)  # (B, 5, L)
        note_amp = present * (0.6 + 0.4 * torch.rand(B, 5, generator=g))  # (B, 5)
        x = torch.einsum("bn,bnl->bl", note_amp, table.gather(1, idx.view(B, -1)).view(B, 5, L))
        # envelope: silence until the onset, a linear attack, then exponential decay
        onset = 0.1 * seconds * torch.rand(B, 1, generator=g)
        attack = 0.005 + 0.075 * torch.rand(B, 1, generator=g)
        decay = 0.5 + 5.5 * torch.rand(B, 1, generator=g)
        since = (t - onset).clamp_min(0)
        env = (since / attack).clamp(max=1.0) * torch.exp(-decay * (since - attack).clamp_min(0)) * (t >= onset)
        x = x * env
        x = x / x.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-8)
        # background noise at 10..30 dB SNR, white or brown (integrated white noise)
        noise = torch.randn(B, L, generator=g)
        brown = noise.cumsum(1)
        brown = brown - brown.mean(1, keepdim=True)
        brown = brown / brown.pow(2).mean(1, keepdim=True).sqrt()
        mix = torch.rand(B, 1, generator=g)
        noise = mix * noise + (1 - mix) * brown
        snr = 10 + 20 * torch.rand(B, 1, generator=g)
        x = x + noise / noise.pow(2).mean(1, keepdim=True).sqrt() * 10 ** (-snr / 20)
        x = x / x.abs().amax(1, keepdim=True).clamp_min(1e-8) * (0.3 + 0.6 * torch.rand(B, 1, generator=g))
        waves[start:start + B], labels[start:start + B] = x, quality
    return waves, labels
