"""Loader order and augmentation depend on (seed, epoch) only: a resumed run sees the same data.

Lightning calls ``set_epoch`` on the training loader's samplers before every epoch
(``_set_sampler_epoch``); here the same function is called, so a fresh DataModule set to
epoch k (a resumed run) must give exactly the batches an uninterrupted one gives at epoch k,
with and without persistent worker processes, whatever the global RNG did in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import Dataset

from attnlab.data import DataModule, LoadContext, SourceData, Split
from helpers import same_batches


class Items(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"inputs": torch.full((1 + i % 5,), float(i)), "target": i % 2}


@dataclass(frozen=True)
class Toy:
    """A sequence task with inputs of 1..5 values, so bucketing has lengths to sort by."""

    n: int = 40

    def load(self, context: LoadContext) -> SourceData:
        def split(n: int) -> Split:
            labels = np.arange(n) % 2
            return Split(Items(n), labels=labels, lengths=1 + np.arange(n) % 5)

        return SourceData(split(self.n), split(8), split(8), "sequence", ["even", "odd"])

    def collate(self, examples: Sequence[dict]) -> dict:
        width = max(len(ex["inputs"]) for ex in examples)
        inputs = torch.stack([torch.nn.functional.pad(ex["inputs"], (0, width - len(ex["inputs"]))) for ex in examples])
        return {"inputs": inputs, "target": torch.tensor([ex["target"] for ex in examples])}


def noise(inputs: torch.Tensor) -> torch.Tensor:
    """A training augmentation drawing from torch's global RNG, as torchvision's do."""
    return inputs + torch.rand(inputs.shape)


def mix(batch: dict) -> dict:
    """A batch transform (MixUp-like): a random permutation and weight, and a soft target."""
    perm, weight = torch.randperm(len(batch["target"])), torch.rand(())
    soft = torch.nn.functional.one_hot(batch["target"], 2).float()
    return {**batch, "soft_target": weight * soft + (1 - weight) * soft[perm]}


def datamodule(seed: int = 3, workers: int = 0, bucket: bool = False) -> DataModule:
    dm = DataModule(
        Toy(), batch_size=4, num_workers=workers, seed=seed, bucket=bucket, train_transform=noise, batch_transform=mix
    )
    dm.setup()
    return dm


def epochs(dm: DataModule, which: Sequence[int]) -> dict[int, list[dict]]:
    """The training batches of each epoch in ``which``, through one loader as Lightning uses it."""
    loader, out = dm.train_dataloader(), {}
    for epoch in which:
        _set_sampler_epoch(loader, epoch)
        torch.rand(100)  # whatever else the run draws from the global RNG
        out[epoch] = list(loader)
    return out


@pytest.mark.parametrize(("workers", "bucket"), [(0, False), (0, True), (2, False)])
def test_a_resumed_epoch_is_the_uninterrupted_epoch(workers, bucket):
    uninterrupted = epochs(datamodule(workers=workers, bucket=bucket), [0, 1, 2])
    torch.manual_seed(1234)  # a resumed process starts from other global RNG states
    resumed = epochs(datamodule(workers=workers, bucket=bucket), [2])
    assert same_batches(uninterrupted[2], resumed[2])
    assert not same_batches(uninterrupted[1], uninterrupted[2]), "each epoch has its own order and augmentation"
    seen = sorted(int(v) for b in uninterrupted[2] for v in b["inputs"].floor()[:, 0])
    assert seen == list(range(40)), "every example once per epoch"


def test_the_seed_changes_order_and_augmentation():
    a, b = epochs(datamodule(seed=3), [0])[0], epochs(datamodule(seed=4), [0])[0]
    assert not same_batches(a, b)


def test_an_example_is_augmented_anew_each_epoch():
    batches = epochs(datamodule(), [1, 2])

    def first(epoch: int) -> torch.Tensor:  # example 0: one value, 0 + noise
        return next(row[0] for b in batches[epoch] for row in b["inputs"] if int(row[0].floor()) == 0)

    assert not torch.equal(first(1), first(2))


def test_augmentation_is_per_example_not_per_position():
    """An example gets the same augmentation in an epoch wherever it lands (a key, not a draw order)."""
    plain, bucketed = epochs(datamodule(), [1])[1], epochs(datamodule(bucket=True), [1])[1]

    def by_example(batches: list[dict]) -> dict[int, torch.Tensor]:
        return {int(row[0].floor()): row for b in batches for row in b["inputs"]}

    x, y = by_example(plain), by_example(bucketed)
    assert all(torch.equal(x[i][: 1 + i % 5], y[i][: 1 + i % 5]) for i in range(40))


def test_augmenting_reseeds_only_the_cpu_generator(monkeypatch):
    """The per-example seed is the CPU generator's: no accelerator's generator is reseeded (their
    dropout streams are the run's), and nothing is queued for one that is not initialised yet."""
    reseeded = []
    for backend in ("cuda", "xpu", "mtia"):
        module = getattr(torch, backend, None)
        if module is not None and hasattr(module, "manual_seed_all"):
            monkeypatch.setattr(module, "manual_seed_all", lambda seed, name=backend: reseeded.append(name))
    epochs(datamodule(), [0])
    assert reseeded == []


def test_evaluation_batches_are_plain_and_in_order():
    dm = datamodule()
    batches = list(dm.val_dataloader())
    assert [int(v) for b in batches for v in b["inputs"][:, 0]] == list(range(8))  # no noise, no shuffling
    assert all("soft_target" not in b for b in batches)
    assert all("soft_target" in b and b["soft_target"].shape == (len(b["target"]), 2) for b in epochs(dm, [0])[0])


def test_bucketing_puts_similar_lengths_together():
    def padding(dm: DataModule) -> int:
        return sum(int((b["inputs"] == 0).sum()) for b in epochs(dm, [0])[0])

    assert padding(datamodule(bucket=True)) < padding(datamodule(bucket=False))
