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

Reads top to bottom, a file an idea:

  tokenizer.py  images to normalised patch vectors, and the per-channel statistics
  data.py       the data sets, decoded once into uint8 tensors (and kept for the next run)
  augment.py    the training augmentation and the stream that augments and tokenises a batch
  settings.py   the data: and model: settings
  task.py       the task ``vision`` (the adapter and head are suite's patch adapter and classifier)

This file registers the task (the modules, which need torch, are imported when the hook or a name
asks for them).
"""
from __future__ import annotations

import suite
from suite.lazy import lazy_getattr

# Where each name this module had before it was split lives; imported on first use (PEP 562).
_EXPORTS = {
    **dict.fromkeys(["ImageTokenizer", "channel_stats"], ".tokenizer"),
    **dict.fromkeys(["ImageSplits", "load_image", "load_images", "_CACHE", "images_for"], ".data"),
    **dict.fromkeys(["build_augment", "TrainStream"], ".augment"),
    **dict.fromkeys(["VisionData", "VisionModel"], ".settings"),
    **dict.fromkeys(["VisionTask"], ".task"),
}


@suite.hookimpl
def suite_register_tasks(register):
    from .task import VisionTask

    register(VisionTask())


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())  # the names this module had, from the files that hold them
