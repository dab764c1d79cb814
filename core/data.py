"""The DataModule: a task's datasets by split, served as DataLoaders."""
from __future__ import annotations

import pytorch_lightning as pl
from torch.utils.data import DataLoader, IterableDataset


class SuiteDataModule(pl.LightningDataModule):
    def __init__(self, task, tokenizer, cfg: dict, datasets: dict | None = None):
        super().__init__()
        self.task, self.tokenizer, self.cfg = task, tokenizer, cfg
        self.datasets = datasets
        self.eval_splits: list[str] | None = None  # what test_dataloader serves; default: the test splits

    def setup(self, stage: str | None = None):
        if self.datasets is None:
            self.datasets = self.task.build_data(self.tokenizer, self.cfg)

    @property
    def test_splits(self) -> list[str]:
        self.setup()
        return [s for s in self.datasets if s.startswith("test")]

    def _loader(self, split: str, train: bool) -> DataLoader:
        d = self.cfg["data"]
        ds = self.datasets[split]
        workers = int(d.get("num_workers", 0))
        return DataLoader(
            ds,
            batch_size=d["batch_size"] if train else d.get("eval_batch_size", d["batch_size"]),
            shuffle=train and not isinstance(ds, IterableDataset),
            drop_last=train and not isinstance(ds, IterableDataset),
            collate_fn=self.task.collate,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return [self._loader(s, False) for s in self.eval_splits or self.test_splits]
