"""What a plugin registers: tasks and weight sources."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from suite.tasks.classification import Classification, top_classes
from suite.tasks.seq2seq import IGNORE, OutputHead, Seq2Seq, Seq2SeqAdapter, Seq2SeqSettings
from suite.tasks.seq2seq import score as score_batch

from .adapters import EmbeddingAdapter
from .heads import ClassifierHead
from .tokenizer import Tokenizer


class Task:
    """One trainable problem: tokenizer, adapter, head, data and an objective from ``suite.tasks``.

    Subclass it, set the class attributes and implement the ``build_*`` methods; register an
    instance from a ``suite_register_tasks`` hook. Settings arrive as the resolved config dict
    ``cfg`` (``cfg["data"]``, ``cfg["model"]``, ``cfg["seed"]``, ...). A task declares its own
    settings with ``settings``, typed dataclasses (``suite train --task T --help`` shows their
    types and docstrings), and/or untyped with ``defaults`` and ``config_file``, a YAML file in
    the plugin package; the user overrides them with ``--data.KEY VALUE``. docs/plugins.md
    describes every method.
    """

    name: str = ""
    domain: str = ""
    description: str = ""
    objective: type = None  # a class from suite.tasks
    mask: str = "bidirectional"  # causal | bidirectional | prefix
    tokenizer_class: type[Tokenizer] = Tokenizer
    # Typed settings: {section: dataclass}, e.g. {"data": MyData, "model": MyModel}; each field has
    # a type, a default and a docstring (the help). A `data` class may subclass suite.DataSettings
    # to change a shared default (batch_size). Sections stay plain dicts in `cfg`.
    settings: dict[str, type] = {}
    # Untyped settings, {section: {key: value}}: typed by their values (an int takes numbers).
    defaults: dict[str, Any] = {}
    # A YAML file next to the module that defines the task (shipped as package data): task
    # settings as configs/tasks/<task>.yaml gives a built-in task, and under ``transfer:`` the
    # task's settings in each ``suite transfer`` profile ({profile: {dotted.key: value}}).
    config_file: str | None = None
    plugin: str = ""  # filled in by the registry

    def build_tokenizer(self, cfg: dict) -> Tokenizer:
        """A new tokenizer (it may look at the training data: a vocabulary, class names, statistics)."""
        raise NotImplementedError

    def load_tokenizer(self, state: dict) -> Tokenizer:
        """The tokenizer saved in a run directory's tokenizer.json."""
        return self.tokenizer_class.from_state(state)

    def build_adapter(self, tokenizer: Tokenizer, d_model: int, cfg: dict) -> nn.Module:
        """``inputs`` -> (B, T, d_model) vectors for the backbone."""
        raise NotImplementedError

    def build_head(self, tokenizer: Tokenizer, d_model: int, cfg: dict) -> nn.Module:
        """``forward(hidden (B, T, d_model), batch)`` -> the logits the objective expects."""
        raise NotImplementedError

    def mask_for(self, cfg: dict) -> str:
        """The attention mask of a run with these settings: ``mask`` unless a setting changes it."""
        return self.mask

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

    def build_eval_data(self, tokenizer: Tokenizer, cfg: dict) -> dict[str, Dataset]:
        """The splits ``suite eval RUN --data.KEY VALUE`` evaluates: the run's data rebuilt with the
        user's settings (their own file, a held-out set). The default: ``build_data`` without "train"."""
        return {k: v for k, v in self.build_data(tokenizer, cfg).items() if k != "train"}

    def collate(self, samples: list) -> dict[str, torch.Tensor]:
        """Samples -> one batch in the layout of the objective (``objective.batch``)."""
        return default_collate(samples)

    def callbacks(self, cfg: dict) -> list:
        """Lightning callbacks this task adds to its single-task training runs (``suite train``,
        the transfer matrix); the default adds none. A callback may change the training data as
        the run goes: ``trainer.datamodule.datasets`` is the dict of this task's datasets by split,
        and a callback that puts a new training set there (a new dict, not changed in place: runs
        may share datasets) and sets ``trainer.reload_dataloaders_every_n_epochs = 1`` has it read
        from the next epoch on. Data a callback adds belongs in its ``state_dict`` so that a
        resumed run trains on the same data (the chess plugin's ``onpolicy.py`` is an example)."""
        return []

    def classes(self, tokenizer: Tokenizer) -> list[str]:
        """Class names, for classification tasks."""
        raise NotImplementedError

    def tokenizer_from_source(self, pretrained: "Pretrained", cfg: dict) -> Tokenizer | None:
        """With ``--init-from`` a weight source: a tokenizer for the source's own vocabulary
        (``pretrained.tokenizer``), so that the source's ``adapter.`` and ``head.`` tensors load too.
        The default, None, keeps ``build_tokenizer`` and a fresh adapter and head."""
        return None

    def predict(self, model, text: str, options: dict) -> str:
        """Answer one raw input given on the command line (``suite predict RUN INPUT --key VALUE``).

        ``model`` is the trained module in eval mode under ``torch.no_grad()``: ``model(batch)``
        gives the head's logits, ``model.tokenizer`` and ``model.cfg`` are the run's. ``options``
        holds the ``--key VALUE`` pairs, values read as YAML. Returns the text to print; raise
        ``suite.SuiteError`` for input that cannot be answered."""
        raise NotImplementedError(f"task {self.name!r} does not support predict")


class ClassificationTask(Task):
    """A classification task whose plugin supplies only its tokenizer and data.

    Implement ``build_tokenizer`` and ``build_data`` (and ``collate`` unless the default one fits
    your samples) and, for ``suite predict``, ``predict_batch``. The class names are the
    tokenizer's ``classes`` field where it has one (it is saved with the run: classes read from the
    data), else the task's ``class_names``. The rest comes with it: an embedding adapter for token
    ids (override ``build_adapter`` for patch vectors, with ``suite.PatchAdapter``), a pooled
    ``ClassifierHead`` (``model.pooling``: mean, cls or last), the ``Classification`` objective,
    and ``predict``, which answers the ``--top N`` likeliest classes as ``name<TAB>probability``
    lines.
    """

    objective = Classification
    mask = "bidirectional"
    class_names: list[str] = []

    def classes(self, tokenizer):
        names = getattr(tokenizer, "classes", None) or self.class_names
        if not names:
            raise NotImplementedError(f"task {self.name!r}: set class_names or give the tokenizer a classes field")
        return list(names)

    def build_adapter(self, tokenizer, d_model, cfg):
        return EmbeddingAdapter(tokenizer.vocab_size, d_model)

    def build_head(self, tokenizer, d_model, cfg):
        pooling = cfg.get("model", {}).get("pooling", "mean")
        return ClassifierHead(d_model, len(self.classes(tokenizer)), pooling=pooling)

    def predict_batch(self, model, text: str, options: dict) -> dict[str, torch.Tensor]:
        """A batch of one sample made from a raw input given on the command line."""
        raise NotImplementedError(f"task {self.name!r} does not support predict")

    def predict(self, model, text, options):
        probs = model(self.predict_batch(model, text, options)).softmax(-1)[0]
        return top_classes(probs, self.classes(model.tokenizer), int(options.get("top", 1)))


class Seq2SeqTask(Task):
    """A sequence-to-sequence task (translation, speech to text) on an encoder-decoder preset:
    the source goes through ``adapter.source`` into the encoder, the target through
    ``adapter.target`` into the decoder, and ``suite.Seq2Seq`` trains and evaluates.

    Implement ``build_tokenizer``, ``build_data`` (samples ``{"source": ids or a (N, patch_dim)
    tensor, "target": ids without BOS/EOS, "references": [text, ...] (optional)}``), ``source_sample``
    (the source of one raw input: ``suite predict``, ``--score``) and set ``text_metrics`` (bleu,
    chrf, wer, cer). The tokenizer gives ``PAD``, ``BOS``, ``EOS``, ``vocab_size`` (the target
    vocabulary), ``encode_target`` and ``decode_target``. The rest comes with it: one embedding
    shared by source and target (override ``build_adapter`` for another source: patches), an output
    layer tied to the target embedding, the collate, ``predict`` (beam search) and ``score``."""

    objective = Seq2Seq
    settings = {"model": Seq2SeqSettings}
    text_metrics: tuple[str, ...] = ("bleu", "chrf")
    PAD, BOS, EOS = 0, 1, 2  # the special target ids the collate writes; the tokenizer's are the same

    def build_adapter(self, tokenizer, d_model, cfg):
        return Seq2SeqAdapter(EmbeddingAdapter(tokenizer.vocab_size, d_model, padding_idx=tokenizer.PAD))

    def build_head(self, tokenizer, d_model, cfg):
        return OutputHead(d_model, tokenizer.vocab_size, tie=bool(cfg.get("model", {}).get("tie_embeddings", True)))

    def source_sample(self, tokenizer: Tokenizer, raw: str):
        """The encoder's input for one raw input (a sentence, an audio file's path): token ids or a tensor."""
        raise NotImplementedError(f"task {self.name!r} does not read raw inputs")

    def pair_sample(self, tokenizer: Tokenizer, source: str, target: str) -> dict:
        """The sample of one (source, target) pair of raw text, for ``suite predict --score``."""
        return {"source": self.source_sample(tokenizer, source), "target": tokenizer.encode_target(target)}

    def collate(self, samples):
        pad, bos, eos = self.PAD, self.BOS, self.EOS
        batch = {}
        sources = [s["source"] for s in samples]
        if isinstance(sources[0], torch.Tensor) and sources[0].is_floating_point():
            batch["source"] = torch.stack([s.float() for s in sources])
        else:
            S = max(len(s) for s in sources)
            batch["source"] = torch.tensor([list(s) + [pad] * (S - len(s)) for s in sources], dtype=torch.long)
            batch["source_padding"] = torch.tensor([[False] * len(s) + [True] * (S - len(s)) for s in sources])
        targets = [list(s["target"]) for s in samples]
        T = max(len(t) for t in targets) + 1
        batch["inputs"] = torch.tensor([[bos] + t + [pad] * (T - 1 - len(t)) for t in targets], dtype=torch.long)
        batch["targets"] = torch.tensor([t + [eos] + [IGNORE] * (T - 1 - len(t)) for t in targets], dtype=torch.long)
        batch["padding"] = torch.tensor([[False] * (len(t) + 1) + [True] * (T - 1 - len(t)) for t in targets])
        if all("references" in s for s in samples):
            batch["references"] = [list(s["references"]) for s in samples]
        return batch

    def predict(self, model, text, options):
        sample = {"source": self.source_sample(model.tokenizer, text), "target": []}
        batch = self.collate([sample])
        objective = model.objective
        saved = dict(objective.settings)
        objective.settings.update({k: v for k, v in options.items() if k in ("beam", "length_penalty", "max_output")})
        try:
            return objective.outputs(model, {k: v for k, v in batch.items() if k.startswith("source")})[0]
        finally:
            objective.settings = saved

    def score(self, model, pairs: list[tuple[str, str]], batch_size: int = 64) -> list[float]:
        """log p(target | source) of each pair (natural log, summed over the target's tokens and EOS)."""
        out = []
        for i in range(0, len(pairs), batch_size):
            batch = self.collate([self.pair_sample(model.tokenizer, s, t) for s, t in pairs[i: i + batch_size]])
            out += score_batch(model, batch).tolist()
        return out


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
