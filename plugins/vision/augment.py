"""Training images: the augmentation (torchvision ``transforms.v2``) and the stream that augments
and tokenises them a batch at a time. Evaluation images are never augmented: they are
``suite.PatchSet``s, their patches computed once (task.py)."""
from __future__ import annotations

import torch

import suite


def build_augment(d: dict, dataset: str):
    """The training augmentation (torchvision transforms.v2), or None when data.augment is off."""
    from torchvision.transforms import v2

    if not d["augment"]:
        return None
    steps = []
    if d["rotate"] or d["translate"] or d["scale"]:
        s = float(d["scale"])
        steps.append(v2.RandomAffine(degrees=float(d["rotate"]), translate=(float(d["translate"]),) * 2,
                                     scale=(1 - s, 1 + s) if s else None))
    hflip = d["hflip"] if d["hflip"] is not None else dataset in ("cifar10", "folder")
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps) if steps else None


class TrainStream(suite.Stream):
    """Shuffled training images, augmented and tokenised a batch at a time.

    A transforms.v2 transform given a (G, C, H, W) tensor draws its random parameters once for
    the whole group, so groups of ``group`` images share a draw: per-image draws cost a Python
    call per image (the tokeniser would then be slower than the training step; see bench/),
    while small groups keep the augmentation varied from step to step.
    """

    def __init__(self, tokenizer, images: torch.Tensor, labels: torch.Tensor, augment, group: int, seed: int):
        super().__init__(seed)
        self.tokenizer, self.images, self.labels = tokenizer, images, labels.long()
        self.augment, self.group = augment, max(1, int(group))

    def size(self):
        return len(self.labels)

    def samples(self, indices, generator):
        images = self.images[indices]
        if self.augment is not None:
            with torch.random.fork_rng(devices=[]):  # transforms.v2 draws from the global RNG: key it to this batch
                torch.manual_seed(generator.initial_seed())
                images = torch.cat([self.augment(images[i:i + self.group]) for i in range(0, len(indices), self.group)])
        inputs, labels = self.tokenizer.encode(images), self.labels[indices]
        return [{"inputs": x, "label": y, "index": i} for x, y, i in zip(inputs, labels, indices)]
