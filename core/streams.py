"""The training stream: samples one epoch at a time, the same on one device or many, whole or resumed.

- ``Stream``: training samples in batches whose contents are fixed by (seed, epoch, global rank,
  batch): ranks get disjoint parts of the epoch, and the samples are the same whatever the number
  of DataLoader workers.
- ``StreamLoader``: a DataLoader that Lightning saves into the checkpoint (``state_dict``): the
  epoch and how many of its batches were served, so a resumed run continues the same stream.
- ``Limited``: the first N samples of a stream, the same N in every epoch (``data.train_limit``,
  the target-data axis of ``suite transfer``).
"""
from __future__ import annotations

import hashlib

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info


def stream_key(*parts) -> int:
    """A 63-bit seed from any tuple of ints and strings (stable across processes and runs)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2 ** 63 - 1)


class Stream(IterableDataset):
    """Training samples, one epoch per iteration, split between ranks and the same on any number of workers.

    Subclasses give ``size()``, the samples in one epoch over all ranks, and ``samples(indices,
    generator)``, the samples of one batch: ``indices`` are the batch's places in the epoch (a
    permutation of ``range(size())`` keyed by seed and epoch, when ``shuffle``), ``generator`` a
    ``torch.Generator`` keyed by (seed, epoch, global rank, batch) for anything random (sampling,
    augmentation). Rank r of W takes every W-th place of the permutation; worker w of K makes
    every K-th batch, which the DataLoader serves back in order. Nothing depends on the worker, so
    resuming needs only the epoch and the number of batches served (see ``StreamLoader``).
    """

    shuffle = True
    indexed = True  # samples(indices, ...) reads places of a finite pool; False: drawn from the generator alone

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.epoch, self.start = 0, 0  # set by StreamLoader before each epoch
        self.batch_size, self.rank, self.world_size = 1, 0, 1  # set by the DataModule

    def size(self) -> int:
        raise NotImplementedError

    def samples(self, indices: torch.Tensor, generator: torch.Generator) -> list:
        raise NotImplementedError

    def configure(self, batch_size: int, rank: int = 0, world_size: int = 1) -> "Stream":
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        return self

    def per_rank(self) -> int:
        return self.size() // self.world_size  # equal on every rank: DDP steps in lockstep

    def batches(self) -> int:
        """Batches per epoch on each rank (full batches only; one short batch for a tiny data set)."""
        return max(1, self.per_rank() // self.batch_size)

    def __len__(self) -> int:  # samples per epoch on this rank, as the DataLoader counts them
        return min(self.per_rank(), self.batches() * self.batch_size)

    def order(self) -> torch.Tensor:
        n = self.size()
        if self.shuffle:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(stream_key(self.seed, self.epoch)))
        else:
            perm = torch.arange(n)
        return perm[self.rank::self.world_size][: self.per_rank()]

    def generator(self, batch: int) -> torch.Generator:
        return torch.Generator().manual_seed(stream_key(self.seed, self.epoch, self.rank, batch))

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        order, bs = self.order(), self.batch_size
        for b in range(self.start + worker, self.batches(), workers):
            yield from self.samples(order[b * bs:(b + 1) * bs], self.generator(b))


class Shuffled(Stream):
    """A map-style training set as a Stream: a new permutation every epoch."""

    def __init__(self, dataset: Dataset, seed: int):
        super().__init__(seed)
        self.dataset = dataset

    def size(self) -> int:
        return len(self.dataset)

    def samples(self, indices, generator):
        return [self.dataset[i] for i in indices.tolist()]


class Limited(Stream):
    """``n`` training samples of ``stream``, the same ones in every epoch, chosen by ``seed`` alone.

    An indexed stream (a data set read by index) keeps ``n`` of its places, picked by a permutation
    keyed by the seed, and is reshuffled and augmented as the whole stream is. A generated stream (every sample
    drawn from the batch's generator: arithmetic problems, random text windows) becomes a pool of
    ``n`` samples, sample i drawn once from a generator keyed by (seed, i)."""

    def __init__(self, stream: Stream, n: int, seed: int):
        super().__init__(seed)
        self.stream, self.n = stream, int(n)
        if stream.indexed:
            perm = torch.randperm(stream.size(), generator=torch.Generator().manual_seed(stream_key(seed, "train_limit")))
            self.places = perm[: self.n]
        self.pool: dict[int, object] = {}

    def size(self) -> int:
        return self.n

    def samples(self, indices, generator):
        if self.stream.indexed:
            return self.stream.samples(self.places[indices], generator)
        for i in indices.tolist():
            if i not in self.pool:
                g = torch.Generator().manual_seed(stream_key(self.seed, "train_limit", i))
                self.pool[i] = self.stream.samples(torch.tensor([i]), g)[0]
        return [self.pool[i] for i in indices.tolist()]


class StreamLoader(DataLoader):
    """A DataLoader over a Stream whose position Lightning keeps in the checkpoint.

    ``state_dict()`` is the epoch and the batches of it served so far; Lightning calls it when it
    saves a checkpoint and ``load_state_dict`` before iterating again on resume. A sized loader is
    not prefetched by Lightning, so "served" is exactly what the training steps consumed.
    """

    def __init__(self, stream: Stream, **kwargs):
        super().__init__(stream, **kwargs)
        self.epoch, self.served = 0, 0

    def __iter__(self):
        if self.served >= len(self):  # resumed at the very end of an epoch
            self.epoch, self.served = self.epoch + 1, 0
        self.dataset.epoch, self.dataset.start = self.epoch, self.served
        for batch in super().__iter__():
            self.served += 1
            yield batch
        self.epoch, self.served = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "served": self.served}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.served = int(state["epoch"]), int(state["served"])
