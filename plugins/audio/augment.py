"""Training spectrograms: SpecAugment (torchaudio's ``FrequencyMasking`` and ``TimeMasking``) and the
stream that masks them and cuts them into patches a batch at a time. Evaluation spectrograms are
never masked: they are ``suite.PatchSet``s, their patches cut once (task.py)."""
from __future__ import annotations

import torch

import suite


def spec_augment_on(d: dict) -> bool:
    """data.spec_augment, or where it is null: on for every data set but the synthesised chords."""
    return bool(d["spec_augment"]) if d["spec_augment"] is not None else d["dataset"] != "chords"


def build_masks(d: dict) -> list | None:
    """The training masks (``data.masks`` frequency masks of up to ``data.freq_mask`` mel bins and as
    many time masks of up to ``data.time_mask`` frames, a draw for each clip), or None when off."""
    import torchaudio.transforms as T

    if not spec_augment_on(d) or int(d["masks"]) < 1:
        return None
    steps = [T.FrequencyMasking(int(d["freq_mask"]), iid_masks=True)] * int(d["masks"])
    steps += [T.TimeMasking(int(d["time_mask"]), iid_masks=True)] * int(d["masks"])
    return steps


class TrainStream(suite.Stream):
    """Shuffled training spectrograms, masked (SpecAugment) and cut into patches a batch at a time.

    The masks are drawn from torch's global RNG (torchaudio's masking draws there), forked and
    seeded with the batch's generator: a batch is masked the same way whatever ran before it, so
    a resumed run sees the masks of the whole one. A masked cell is set to the training mean, 0
    once normalised, as in the Audio Spectrogram Transformer.
    """

    def __init__(self, tokenizer, features: torch.Tensor, labels: torch.Tensor, masks: list, seed: int):
        super().__init__(seed)
        self.tokenizer, self.features, self.labels, self.masks = tokenizer, features, labels.long(), masks

    def size(self):
        return len(self.labels)

    def samples(self, indices, generator):
        x = self.features[indices].float()  # (B, n_mels, frames) log-mel
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(generator.initial_seed())
            for mask in self.masks:
                x = mask(x, self.tokenizer.mean)
        inputs, labels = self.tokenizer.patches(x), self.labels[indices]
        return [{"inputs": x, "label": y, "index": i} for x, y, i in zip(inputs, labels, indices)]
