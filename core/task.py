"""What a plugin registers: tasks and weight sources."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from .tokenizer import Tokenizer


class Task:
    """One trainable problem: tokenizer, adapter, head, data and an objective from ``suite.tasks``.

    Subclass it, set the class attributes and implement the ``build_*`` methods; register an
    instance from a ``suite_register_tasks`` hook. Settings arrive as the resolved config dict;
    a task's own settings live under ``data`` and ``model`` in ``defaults``, which the user
    overrides with ``--data.KEY VALUE``.
    """

    name: str = ""
    domain: str = ""
    description: str = ""
    objective: type = None  # a class from suite.tasks
    mask: str = "bidirectional"  # causal | bidirectional | prefix
    tokenizer_class: type[Tokenizer] = Tokenizer
    defaults: dict[str, Any] = {}
    plugin: str = ""  # filled in by the registry

    def build_tokenizer(self, cfg: dict) -> Tokenizer:
        raise NotImplementedError

    def load_tokenizer(self, state: dict) -> Tokenizer:
        return self.tokenizer_class.from_state(state)

    def build_adapter(self, tokenizer: Tokenizer, d_model: int, cfg: dict) -> nn.Module:
        raise NotImplementedError

    def build_head(self, tokenizer: Tokenizer, d_model: int, cfg: dict) -> nn.Module:
        raise NotImplementedError

    def prepare_data(self, cfg: dict) -> None:
        """Download, generate and cache what ``build_tokenizer`` and ``build_data`` will read.

        Called once per machine before them, under a file lock (``suite.file_lock``), so that
        two processes (DDP ranks, parallel runs) never write one cache; they then only load.
        Keep caches under ``suite.cache_dir(name)``. The default does nothing.
        """

    def build_data(self, tokenizer: Tokenizer, cfg: dict) -> dict[str, Dataset]:
        """Datasets by split: "train", "val", "test", and any further "test_*" evaluation splits.

        The training set is best a :class:`suite.Stream` (split between ranks, resumable); a
        map-style Dataset is shuffled into one by the host. Evaluation splits are map-style.
        """
        raise NotImplementedError

    def collate(self, samples: list) -> dict[str, torch.Tensor]:
        return default_collate(samples)

    def classes(self, tokenizer: Tokenizer) -> list[str]:
        """Class names, for classification tasks."""
        raise NotImplementedError

    def tokenizer_from_source(self, pretrained: "Pretrained", cfg: dict) -> Tokenizer | None:
        """With ``--init-from`` a weight source: a tokenizer for the source's own vocabulary
        (``pretrained.tokenizer``), so that the source's ``adapter.`` and ``head.`` tensors load too.
        The default, None, keeps ``build_tokenizer`` and a fresh adapter and head."""
        return None

    def predict(self, model, text: str, options: dict) -> str:
        """Answer one raw input given on the command line (``suite predict RUN INPUT``)."""
        raise NotImplementedError(f"task {self.name!r} does not support predict")


@dataclass
class Pretrained:
    """Weights from a weight source: a backbone config (BackboneConfig fields) and a state dict
    whose keys start with ``backbone.`` (and optionally ``adapter.`` and ``head.`` for the source's
    own domain). ``tokenizer`` describes the source's vocabulary (JSON values, e.g. a vocabulary
    file) for tasks that can adopt it through ``Task.tokenizer_from_source``."""

    backbone: dict
    state_dict: dict[str, torch.Tensor]
    description: str = ""
    tokenizer: dict | None = None


@dataclass
class WeightSource:
    """A named source of pretrained backbone weights. ``load(argument)`` gets the text after
    ``NAME:`` in ``--init-from NAME:ARGUMENT`` (empty for a bare ``NAME``)."""

    name: str
    description: str
    load: Callable[[str], Pretrained]
