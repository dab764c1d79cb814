"""Vision: image classification with a ViT-style patch tokenizer on the shared backbone.

An image (C, H, W) is cut into non-overlapping ``patch_size`` squares, each flattened to a
vector of C * p * p pixels normalised with the training set's per-channel statistics; the
adapter projects the patches to ``d_model``, puts a [CLS] vector in front and adds factorised
row + column positions; the head classifies the [CLS] state.

Data (``--data.dataset``): ``digits`` (scikit-learn's bundled 8x8 handwritten digits, the
default, no network), ``mnist``, ``fashion_mnist`` and ``cifar10`` (torchvision, read from
``--data.root``, downloaded only with ``--data.download true``) and ``folder`` (an ImageFolder
directory of your own images: one subfolder per class). Training images are augmented with
torchvision ``transforms.v2``; evaluation images never are.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch

import suite

from .data import ImageSplits, load_image, load_images


# -- tokenizer --------------------------------------------------------------------------------
@dataclasses.dataclass
class ImageTokenizer(suite.Tokenizer):
    """Images (B, C, H, W) -> normalised patch vectors (B, rows * cols, C * p * p).

    ``mean``/``std`` are per-channel statistics of the training images on the [0, 1] scale;
    ``classes`` are the label names, so a run directory can predict without its data.
    """

    channels: int
    height: int
    width: int
    patch_size: int
    mean: list[float]
    std: list[float]
    classes: list[str]

    def __post_init__(self):
        p = self.patch_size
        if p < 1 or self.height % p or self.width % p:
            raise suite.SuiteError(
                f"data.patch_size {p} must divide the image size {self.height}x{self.width}")

    @property
    def grid(self) -> tuple[int, int]:
        return self.height // self.patch_size, self.width // self.patch_size

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size ** 2

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) in 0..255, or float in [0, 1] -> (B, N, patch_dim) float32."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        x = (x - mean) / std
        B, C, H, W = x.shape
        p = self.patch_size
        # (B, C, rows, p, cols, p) -> (B, rows, cols, C, p, p) -> (B, rows * cols, C * p * p)
        x = x.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, (H // p) * (W // p), C * p * p)


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


# -- data: evaluation splits are suite.PatchSet (patches computed once) ----------------------
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


# -- settings -------------------------------------------------------------------------------------
@dataclasses.dataclass
class VisionData(suite.DataSettings):
    """data: the images, their splits and the training augmentation"""

    dataset: str = "digits"
    """digits, mnist, fashion_mnist, cifar10 or folder"""
    root: Optional[str] = None
    """data directory for mnist, fashion_mnist, cifar10 and folder"""
    download: bool = False
    """fetch mnist / fashion_mnist / cifar10 into root (needs network)"""
    image_size: int = 32
    """folder only: images are resized to image_size x image_size"""
    channels: int = 3
    """folder only: 1 (grey) or 3 (RGB)"""
    patch_size: Optional[int] = None
    """null: 2 for images up to 16 pixels (digits), else 4"""
    val_fraction: float = 0.1
    """of the training images (of all images for digits and a plain folder)"""
    test_fraction: float = 0.2
    """digits and a folder without train/ and test/ subfolders"""
    augment: bool = True
    """torchvision transforms.v2 on training images only"""
    rotate: float = 10
    """degrees"""
    translate: float = 0.1
    """fraction of the image size"""
    scale: float = 0.1
    """zoom in [1 - scale, 1 + scale]"""
    hflip: Optional[bool] = None
    """null: on for cifar10 and folder, off for digits (a flipped 2 is no 2)"""
    augment_group: int = 8
    """images sharing one draw of the random augmentation parameters"""
    batch_size: int = 64
    """training samples per optimiser step (per device)"""


@dataclasses.dataclass
class VisionModel(suite.ClassifierSettings):
    """model: the classifier head"""

    label_smoothing: float = 0.1
    """of the cross-entropy targets"""


# -- the task ---------------------------------------------------------------------------------
_CACHE: dict = {}


def images_for(d: dict, seed: int) -> ImageSplits:
    """The decoded images of the configured data set, loaded once per process."""
    keys = ("dataset", "root", "download", "image_size", "channels", "val_fraction", "test_fraction")
    key = (seed, *(str(d.get(k)) for k in keys))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_images(d, seed)
    return _CACHE[key]


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) on the [0, 1] scale, in chunks."""
    C = images.shape[1]
    total, sq, count = torch.zeros(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64), 0
    for i in range(0, len(images), 8192):
        x = images[i:i + 8192].double().div_(255).transpose(0, 1).reshape(C, -1)
        total += x.sum(1)
        sq += (x * x).sum(1)
        count += x.shape[1]
    mean = total / count
    std = (sq / count - mean ** 2).clamp_min(1e-12).sqrt().clamp_min(1e-3)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


class VisionTask(suite.ClassificationTask):
    name = "vision"
    domain = "vision"
    description = "image classification (digits, MNIST, FashionMNIST, CIFAR-10, an image folder) with patch tokens"
    tokenizer_class = ImageTokenizer
    settings = {"data": VisionData, "model": VisionModel}

    def build_tokenizer(self, cfg):
        d = cfg["data"]
        data = images_for(d, int(cfg["seed"]))
        _, C, H, W = data.train_images.shape
        patch = int(d["patch_size"]) if d["patch_size"] else (2 if max(H, W) <= 16 else 4)
        mean, std = channel_stats(data.train_images)
        return ImageTokenizer(C, H, W, patch, mean, std, list(data.classes))

    def build_adapter(self, tokenizer, d_model, cfg):
        return suite.PatchAdapter(tokenizer.patch_dim, d_model, tokenizer.grid, cfg["backbone"]["max_len"],
                                  f"{tokenizer.height}x{tokenizer.width} images", "raise --data.patch_size")

    def build_data(self, tokenizer, cfg):
        d = cfg["data"]
        data = images_for(d, int(cfg["seed"]))
        if tuple(data.train_images.shape[1:]) != (tokenizer.channels, tokenizer.height, tokenizer.width) \
                or list(data.classes) != list(tokenizer.classes):
            raise suite.SuiteError(
                f"data set {d['dataset']!r} has {tuple(data.train_images.shape[1:])} images and classes "
                f"{data.classes[:5]}..., but the run's tokenizer expects "
                f"{(tokenizer.channels, tokenizer.height, tokenizer.width)} and {tokenizer.classes[:5]}...")
        augment = build_augment(d, d["dataset"])
        return {
            "train": TrainStream(tokenizer, data.train_images, data.train_labels, augment,
                                 d["augment_group"], int(cfg["seed"])),
            "val": suite.PatchSet(tokenizer.encode, data.val_images, data.val_labels, chunk=4096),
            "test": suite.PatchSet(tokenizer.encode, data.test_images, data.test_labels, chunk=4096),
        }

    def predict_batch(self, model, text, options):
        tok = model.tokenizer
        image = load_image(Path(text), tok.channels, (tok.height, tok.width))
        if options.get("invert"):
            image = 255 - image
        return {"inputs": tok.encode(image[None])}


@suite.hookimpl
def suite_register_tasks(register):
    register(VisionTask())
