"""The vision task: image classification with patch tokens on the shared backbone."""
from __future__ import annotations

from pathlib import Path

import suite

from .augment import TrainStream, build_augment
from .data import images_for, load_image
from .settings import VisionData, VisionModel
from .tokenizer import ImageTokenizer, channel_stats


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
