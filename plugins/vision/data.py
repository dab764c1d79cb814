"""Image data sets, decoded once into uint8 tensors (N, C, H, W) with integer labels.

digits         scikit-learn's bundled 8x8 handwritten digits (1797 images, no network)
mnist          torchvision MNIST under --data.root (MNIST/raw/*-ubyte), 28x28
fashion_mnist  torchvision FashionMNIST under --data.root, 28x28
cifar10        torchvision CIFAR-10 under --data.root (cifar-10-batches-py), 32x32 RGB
folder         an ImageFolder directory: --data.root/<class>/<image>; or, when it has them,
               --data.root/train/<class>/..., --data.root/test/<class>/... (and optionally val/)
hf:NAME_OR_PATH  a Hugging Face data set (suite.hf_datasets): --data.image_column, --data.label_column

The downloadable sets are fetched only when --data.download is true. Images of a folder or an
hf: data set are resized to --data.image_size and converted to --data.channels (1 grey, 3 RGB);
unreadable ones are skipped, counted and reported.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

import suite

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "folder")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass
class ImageSplits:
    classes: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @classmethod
    def complete(cls, classes: list[str], parts: dict, d: dict, seed: int) -> "ImageSplits":
        """From {"all": (x, y)} or {"train", "test"[, "val"]} (suite.complete_splits makes the rest)."""
        s = suite.complete_splits(parts, float(d["val_fraction"]), float(d["test_fraction"]), seed)
        return cls(classes, *s["train"], *s["val"], *s["test"])


def load_digits() -> tuple[list[str], torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.from_numpy(bunch.images).float()  # (N, 8, 8), ink intensity 0..16
    x = (x * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    return [str(c) for c in bunch.target_names], x, torch.from_numpy(bunch.target).long()


def load_torchvision(name: str, root: str, download: bool):
    """(classes, train_x, train_y, test_x, test_y) from a torchvision data set class."""
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    where = {"mnist": "MNIST/raw", "fashion_mnist": "FashionMNIST/raw", "cifar10": "cifar-10-batches-py"}[name]
    out = []
    for train in (True, False):
        try:
            ds = cls(root, train=train, download=download)
        except RuntimeError as e:  # "Dataset not found. You can use download=True ..."
            hint = "" if download else " (pass --data.download true to fetch it)"
            raise suite.SuiteError(f"{Path(root) / where}: {name} not found or incomplete: {e}{hint}") from None
        except (OSError, ValueError, TypeError) as e:
            raise suite.SuiteError(f"{Path(root) / where}: cannot read {name}: {e}") from None
        x = torch.as_tensor(ds.data)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)  # (N, C, H, W)
        out += [x.contiguous().to(torch.uint8), torch.as_tensor(ds.targets).long()]
    return [str(c) for c in cls.classes], *out


def load_image(path, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """One image file (a path, or a binary file object whose ``name`` messages give) -> uint8
    (channels, H, W) resized to ``size``; SuiteError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    name = path if isinstance(path, (str, Path)) else path.name
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except FileNotFoundError:
        raise suite.SuiteError(f"{name}: no such image file") from None
    except IsADirectoryError:
        raise suite.SuiteError(f"{name}: is a directory, not an image file") from None
    except UnidentifiedImageError:
        raise suite.SuiteError(f"{name}: not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise suite.SuiteError(f"{name}: cannot decode image: {e}") from None
    return data.view(size[0], size[1], channels).permute(2, 0, 1).contiguous()


def decode_folder(files: dict[str, list[Path]], classes: list[str], channels: int, size: int):
    """Decode every image; unreadable files are skipped and reported once, with a count."""
    images, labels, bad = [], [], []
    for name, paths in files.items():
        for path in paths:
            try:
                images.append(load_image(path, channels, (size, size)))
                labels.append(classes.index(name))
            except suite.SuiteError as e:
                bad.append(str(e))
    if bad:
        print(f"suite: vision: skipped {len(bad)} unreadable image(s); first: {bad[0]}", file=sys.stderr)
    if not images:
        raise suite.SuiteError(f"{next(iter(files.values()))[0].parent.parent}: none of the images could be read")
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), len(bad)


def image_format(d: dict) -> tuple[int, int]:
    """(channels, image_size) of a folder or an hf: data set, checked."""
    channels, size = int(d["channels"]), int(d["image_size"])
    if channels not in (1, 3):
        raise suite.SuiteError(f"data.channels must be 1 (grey) or 3 (RGB), not {channels}")
    return channels, size


def load_folder(d: dict, seed: int) -> ImageSplits:
    if not d.get("root"):
        raise suite.SuiteError("--data.dataset folder needs --data.root DIR (a folder with one subfolder per class)")
    channels, size = image_format(d)
    classes, found = suite.class_folders(d["root"], IMAGE_SUFFIXES, "image")
    parts = {split: decode_folder(files, classes, channels, size)[:2] for split, files in found.items()}
    return ImageSplits.complete(classes, parts, d, seed)


def load_hf(d: dict, seed: int) -> ImageSplits:
    """A Hugging Face data set: its image cells (stored bytes or file paths) decoded as folder images are."""
    channels, size = image_format(d)
    data = suite.hf_datasets.load_labelled(d["dataset"], d["split"], d["image_column"], d["label_column"],
                                           lambda source, where: load_image(source, channels, (size, size)),
                                           torch.stack, "image")
    return ImageSplits.complete(data.classes, data.parts, d, seed)


def load_images(d: dict, seed: int) -> ImageSplits:
    name = d["dataset"]
    if name.startswith("hf:"):
        return load_hf(d, seed)
    if name not in DATASETS:
        raise suite.SuiteError(f"data.dataset must be one of {', '.join(DATASETS)} or hf:NAME_OR_PATH, not {name!r}")
    if name == "digits":
        classes, x, y = load_digits()
        return ImageSplits.complete(classes, {"all": (x, y)}, d, seed)
    if name == "folder":
        return load_folder(d, seed)
    if not d.get("root"):
        raise suite.SuiteError(f"--data.dataset {name} needs --data.root DIR (add --data.download true to fetch it there)")
    classes, train_x, train_y, test_x, test_y = load_torchvision(name, str(Path(d["root"]).expanduser()), bool(d["download"]))
    return ImageSplits.complete(classes, {"train": (train_x, train_y), "test": (test_x, test_y)}, d, seed)


# -- the configured data set, loaded once per process -------------------------------------------
_CACHE: dict = {}


def images_for(d: dict, seed: int) -> ImageSplits:
    """The decoded images of the configured data set, loaded once per process."""
    keys = ("dataset", "root", "download", "image_size", "channels", "val_fraction", "test_fraction",
            "split", "image_column", "label_column")
    key = (seed, *(str(d.get(k)) for k in keys))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_images(d, seed)
    return _CACHE[key]
