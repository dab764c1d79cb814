"""The DataModule: a task's data by split, prepared once, served to one device or many (DESIGN.md invariant 8)."""
from __future__ import annotations

import warnings

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from .cache import prepare
from .errors import SuiteError
from .streams import Limited, Shuffled, Stream, StreamLoader


class SuiteDataModule(pl.LightningDataModule):
    def __init__(self, task, tokenizer, cfg: dict, datasets: dict | None = None):
        super().__init__()
        self.task, self.tokenizer, self.cfg = task, tokenizer, cfg
        self.datasets = datasets
        self.eval_splits: list[str] | None = None  # what test_dataloader serves; default: the test splits

    def prepare_data(self):
        prepare(self.task, self.cfg)

    def setup(self, stage: str | None = None):
        if self.datasets is None:
            self.datasets = self.task.build_data(self.tokenizer, self.cfg)

    @property
    def test_splits(self) -> list[str]:
        self.setup()
        return [s for s in self.datasets if s.startswith("test")]

    @property
    def all_splits(self) -> list[str]:
        """What a run is evaluated on at its end: "val" and every test split."""
        return ["val", *self.test_splits]

    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self):
        d = self.cfg["data"]
        ds, (rank, world) = self.datasets["train"], self._ranks()
        workers, bs = int(d.get("num_workers", 0)), int(d["batch_size"])
        common = dict(batch_size=bs, collate_fn=self.task.collate, num_workers=workers)
        if not isinstance(ds, IterableDataset):
            ds = Shuffled(ds, int(self.cfg["seed"]))
        if d.get("train_limit") is not None:
            ds = limit(ds, int(d["train_limit"]), int(self.cfg["seed"]), self.task.name)
        if isinstance(ds, Stream):
            # A generator of its own: creating the iterator draws no number from torch's global RNG.
            loader = StreamLoader(ds.configure(bs, rank, world), generator=torch.Generator().manual_seed(0), **common)
            # Read again at an epoch start (reload_dataloaders_every_n_epochs): that epoch's permutation,
            # not the first one's. A resumed run then loads the saved position over it.
            loader.epoch = self.trainer.current_epoch if self.trainer is not None else 0
            return loader
        if world > 1:  # a plugin's own IterableDataset cannot know its rank
            warnings.warn(f"task {self.task.name!r}: the training data is a plain IterableDataset, so every rank "
                          "reads the same samples; derive it from suite.Stream to split it between ranks")
        return DataLoader(ds, persistent_workers=workers > 0, **common)

    def _eval_loader(self, split: str) -> DataLoader:
        d = self.cfg["data"]
        ds, (rank, world) = self.datasets[split], self._ranks()
        sampler = None
        if world > 1 and not isinstance(ds, IterableDataset):
            # Each sample once over all ranks, none repeated to even them out: exact metrics.
            from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(ds, num_replicas=world, rank=rank, shuffle=False)
        workers = int(d.get("num_workers", 0))
        return DataLoader(ds, batch_size=d.get("eval_batch_size", d["batch_size"]), sampler=sampler,
                          collate_fn=self.task.collate, num_workers=workers, persistent_workers=workers > 0)

    def val_dataloader(self):
        return self._eval_loader("val")

    def test_dataloader(self):
        return [self._eval_loader(s) for s in self.eval_splits or self.test_splits]


def limit(ds, n: int, seed: int, task: str) -> Limited:
    """``data.train_limit``: ``n`` samples of the training stream (suite.Limited)."""
    if not isinstance(ds, Stream):
        raise SuiteError(f"task {task!r}: data.train_limit needs training data that is a suite.Stream or a "
                         "map-style Dataset, not a plain IterableDataset")
    if n < 1:
        raise SuiteError(f"data.train_limit must be at least 1, not {n}")
    if ds.indexed and n > ds.size():
        raise SuiteError(f"data.train_limit {n} is more than the {ds.size():,} training samples of task {task!r}")
    return Limited(ds, n, seed)
