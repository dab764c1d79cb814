"""suite.Stream and StreamLoader: ranks split an epoch, workers do not change it, a resumed loader continues it."""
import torch

import suite
from suite.streams import StreamLoader


class Numbers(suite.Stream):
    """Sample = (its place in the epoch, a number drawn from the batch's generator)."""

    def __init__(self, n, seed=0):
        super().__init__(seed)
        self.n = n

    def size(self):
        return self.n

    def samples(self, indices, generator):
        draws = torch.randint(1000, (len(indices),), generator=generator)
        return [(int(i), int(d)) for i, d in zip(indices, draws)]


def epoch(stream, batch_size=4, rank=0, world=1, workers=0, epochs=1):
    loader = StreamLoader(stream.configure(batch_size, rank, world), batch_size=batch_size, num_workers=workers,
                          collate_fn=lambda s: s)
    return [[tuple(x) for x in batch] for _ in range(epochs) for batch in loader]


def test_ranks_see_disjoint_parts_of_each_epoch_and_together_cover_it():
    r0, r1 = epoch(Numbers(40), rank=0, world=2), epoch(Numbers(40), rank=1, world=2)
    seen0, seen1 = {i for b in r0 for i, _ in b}, {i for b in r1 for i, _ in b}
    assert len(r0) == len(r1) == 5 and not seen0 & seen1 and seen0 | seen1 == set(range(40))


def test_the_stream_is_the_same_with_any_number_of_workers():
    assert epoch(Numbers(48), workers=0) == epoch(Numbers(48), workers=1) == epoch(Numbers(48), workers=2)


def test_each_epoch_is_a_new_permutation_fixed_by_the_seed():
    two = epoch(Numbers(16), epochs=2)
    first, second = [i for b in two[:4] for i, _ in b], [i for b in two[4:] for i, _ in b]
    assert sorted(first) == sorted(second) == list(range(16)) and first != second
    assert epoch(Numbers(16, seed=0), epochs=2) == two != epoch(Numbers(16, seed=1), epochs=2)


def test_a_loader_restored_from_its_state_continues_where_it_stopped():
    whole = epoch(Numbers(32), epochs=3)  # 8 batches an epoch
    loader = StreamLoader(Numbers(32).configure(4), batch_size=4, collate_fn=lambda s: s)
    served = list(loader)  # the first epoch
    it = iter(loader)
    served += [next(it) for _ in range(3)]  # and three batches of the second
    state = loader.state_dict()
    assert state == {"epoch": 1, "served": 3}
    again = StreamLoader(Numbers(32).configure(4), batch_size=4, collate_fn=lambda s: s)
    again.load_state_dict(state)
    rest = [b for _ in range(2) for b in again]
    assert [[tuple(x) for x in b] for b in served + rest] == whole


def test_a_map_style_training_set_is_shuffled_into_a_stream():
    data = list(range(10))
    stream = suite.Shuffled(data, seed=3).configure(5)
    assert len(stream) == 10 and sorted(x for x in stream) == data and list(stream) != data


def test_a_training_loader_read_again_at_an_epoch_start_serves_that_epochs_permutation():
    from types import SimpleNamespace

    from suite.data import SuiteDataModule

    task = SimpleNamespace(name="numbers", collate=lambda s: s)
    dm = SuiteDataModule(task, None, {"seed": 0, "data": {"batch_size": 5}}, datasets={"train": list(range(10))})
    dm.trainer = SimpleNamespace(current_epoch=3, global_rank=0, world_size=1)  # reload_dataloaders_every_n_epochs
    reloaded = [x for batch in dm.train_dataloader() for x in batch]
    stream = suite.Shuffled(list(range(10)), seed=0).configure(5)
    stream.epoch = 3
    assert reloaded == list(stream) and sorted(reloaded) == list(range(10))
    stream.epoch = 0
    assert reloaded != list(stream)  # not the first epoch's order again
