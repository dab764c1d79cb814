"""The DataModule: a task's data by split, prepared once, served to one device or many (DESIGN.md invariant 8)."""
from __future__ import annotations

import warnings

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from . import joint
from .cache import prepare
from .errors import SuiteError
from .streams import Limited, Shuffled, Stream, StreamLoader, stream_key


class SuiteDataModule(pl.LightningDataModule):
    """The data of a run's set of tasks (the LightningDataModule beside core/module.py's SuiteModule).

    ``SuiteDataModule(task, tokenizer, cfg)``: one task's splits, its batches as they come.
    ``SuiteDataModule({name: task}, {name: tokenizer}, cfg)`` with a joint run's config: ``members``
    are each task's data module of one; training batches are ``(name, batch)`` from ``JointLoader``
    (the mix), and the splits are named ``<task>/<split>`` (``joint.prefix``). ``datasets``: the
    task's datasets by split (of a set: by task), built already (runs in one process share them)."""

    def __init__(self, task, tokenizer, cfg: dict, datasets: dict | None = None):
        super().__init__()
        if isinstance(task, dict) and len(task) == 1:  # a set of one, given as a set
            (name, task), = task.items()
            tokenizer = tokenizer[name] if isinstance(tokenizer, dict) else tokenizer
            datasets = (datasets or {}).get(name)
        self.task, self.tokenizer, self.cfg = task, tokenizer, cfg
        self.eval_splits: list[str] | None = None  # what test_dataloader serves; default: the test splits
        self.weights: list[float] = [1.0]  # the tasks' shares of the batches, once train_dataloader has made them
        if isinstance(task, dict):
            datasets = datasets or {}
            self.members = {n: SuiteDataModule(t, tokenizer[n], joint.task_config(cfg, n), datasets.get(n))
                            for n, t in task.items()}
            self.datasets = None
        else:
            self.members = {task.name: self}
            self.datasets = datasets
        self.names = list(self.members)

    def prepare_data(self):
        for dm in self.members.values():
            prepare(dm.task, dm.cfg)

    def setup(self, stage: str | None = None):
        for dm in self.members.values():
            dm.trainer = self.trainer  # each reads its rank from it
            if dm.datasets is None:
                dm.datasets = dm.task.build_data(dm.tokenizer, dm.cfg)

    @property
    def test_splits(self) -> list[str]:
        return [joint.prefix(self.names, n) + s for n, dm in self.members.items() for s in dm.own_test_splits()]

    @property
    def all_splits(self) -> list[str]:
        """What a run is evaluated on at its end: "val" and every test split (of each task)."""
        return [joint.prefix(self.names, n) + s for n, dm in self.members.items() for s in ["val", *dm.own_test_splits()]]

    def own_test_splits(self) -> list[str]:
        self.setup()
        return [s for s in self.datasets if s.startswith("test")]

    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self):
        if len(self.names) > 1:
            self.setup()
            loaders = {n: dm.train_dataloader() for n, dm in self.members.items()}
            self.weights = mix_weights(self.cfg["joint"]["mix"], loaders)
            return JointLoader(loaders, self.weights, int(self.cfg["seed"]))
        d = self.cfg["data"]
        ds, (rank, world) = self.datasets["train"], self._ranks()
        workers, bs = int(d.get("num_workers", 0)), int(d["batch_size"])
        common = dict(batch_size=bs, collate_fn=self.task.collate, num_workers=workers)
        ds = training_samples(ds, self.cfg, self.task.name)
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
        self.setup()
        loaders = [dm._eval_loader("val") for dm in self.members.values()]
        return loaders[0] if len(loaders) == 1 else loaders

    def test_dataloader(self):
        self.setup()
        return [self.members[n]._eval_loader(s) for n, s in
                (joint.split_of(self.names, key) for key in self.eval_splits or self.test_splits)]


def training_samples(ds, cfg: dict, task_name: str):
    """A task's training set as training reads it: a map-style dataset shuffled by the seed (an
    IterableDataset as it is), then ``data.train_limit`` samples of it where that is set."""
    if not isinstance(ds, IterableDataset):
        ds = Shuffled(ds, int(cfg["seed"]))
    if cfg["data"].get("train_limit") is not None:
        ds = limit(ds, int(cfg["data"]["train_limit"]), int(cfg["seed"]), task_name)
    return ds


def mix_weights(mix, loaders: dict) -> list[float]:
    """The sampling weight of each task's batches (normalised by the sampler)."""
    if mix == "uniform":
        return [1.0] * len(loaders)
    if isinstance(mix, list):
        return [float(w) for w in mix]
    temperature = float(str(mix).partition(":")[2] or 1)
    sizes = []
    for name, loader in loaders.items():
        try:
            sizes.append(len(loader.dataset))
        except TypeError:
            raise SuiteError(f"--mix {mix}: task {name}'s training data has no size; give weights with --mix") from None
    return [s ** (1 / temperature) for s in sizes]



class JointLoader:
    """``(task name, batch)`` pairs: batch ``i`` of joint epoch ``e`` is the next batch of the task
    drawn with ``weights`` by a generator keyed by (seed, e, i). A joint epoch is as many batches as
    the tasks' epochs together; a task whose epoch ends starts its next one.

    Lightning saves ``state_dict()`` into the checkpoint, as it does a ``StreamLoader``'s: the joint
    epoch, the batches of it served, and each task loader's own state, so a resumed run draws the
    same tasks and the same batches."""

    def __init__(self, loaders: dict, weights: list[float], seed: int):
        self.loaders, self.names = loaders, list(loaders)
        self.weights = torch.tensor(weights, dtype=torch.float64)
        self.seed = int(seed)
        self.epoch, self.served = 0, 0

    def __len__(self) -> int:
        return sum(len(loader) for loader in self.loaders.values())

    def task_of(self, epoch: int, batch: int) -> str:
        g = torch.Generator().manual_seed(stream_key(self.seed, "mix", epoch, batch))
        return self.names[int(torch.multinomial(self.weights, 1, generator=g))]

    def __iter__(self):
        if self.served >= len(self):  # resumed at the very end of an epoch
            self.epoch, self.served = self.epoch + 1, 0
        running = {}
        while self.served < len(self):
            name = self.task_of(self.epoch, self.served)
            batch = next(running[name], None) if name in running else None
            if batch is None:  # the task's first batch in this joint epoch, or its own epoch ended
                running[name] = iter(self.loaders[name])
                batch = next(running[name])
            self.served += 1
            yield name, batch
        self.epoch, self.served = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "served": self.served,
                "tasks": {n: l.state_dict() for n, l in self.loaders.items() if hasattr(l, "state_dict")}}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.served = int(state["epoch"]), int(state["served"])
        for name, loader_state in state.get("tasks", {}).items():
            self.loaders[name].load_state_dict(loader_state)


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
