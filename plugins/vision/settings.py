"""The vision task's settings: the data: section and the model: section (the classifier head)."""
from __future__ import annotations

import dataclasses
from typing import Optional

import suite


@dataclasses.dataclass
class VisionData(suite.DataSettings):
    """data: the images, their splits and the training augmentation"""

    dataset: str = "digits"
    """digits, mnist, fashion_mnist, cifar10, folder or hf:NAME_OR_PATH (a Hugging Face data set)"""
    root: Optional[str] = None
    """data directory for mnist, fashion_mnist, cifar10 and folder"""
    download: bool = False
    """fetch mnist / fashion_mnist / cifar10 into root (needs network)"""
    split: Optional[str] = None
    """hf: only: the one split to use, split three ways (null: the data set's train/validation/test)"""
    image_column: str = "image"
    """hf: only: the column of images (Image feature or file paths)"""
    label_column: str = "label"
    """hf: only: the column of labels (ClassLabel, strings or integers)"""
    image_size: int = 32
    """folder and hf: images are resized to image_size x image_size"""
    channels: int = 3
    """folder and hf: 1 (grey) or 3 (RGB)"""
    patch_size: Optional[int] = None
    """null: 2 for images up to 16 pixels (digits), else 4"""
    val_fraction: float = 0.1
    """of the training images (of all images for digits, a plain folder and an hf: set of one split)"""
    test_fraction: float = 0.2
    """digits, a folder without train/ and test/ subfolders, and an hf: set of one split"""
    augment: bool = True
    """torchvision transforms.v2 on training images only"""
    rotate: float = 10
    """degrees"""
    translate: float = 0.1
    """fraction of the image size"""
    scale: float = 0.1
    """zoom in [1 - scale, 1 + scale]"""
    hflip: Optional[bool] = None
    """null: on for cifar10 and folder, off for digits (a flipped 2 is no 2) and hf:"""
    augment_group: int = 8
    """images sharing one draw of the random augmentation parameters"""
    batch_size: int = 64
    """training samples per optimiser step (per device)"""


@dataclasses.dataclass
class VisionModel(suite.ClassifierSettings):
    """model: the classifier head"""

    label_smoothing: float = 0.1
    """of the cross-entropy targets"""
