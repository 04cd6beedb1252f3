"""Loader order and per-example randomness that depend on (seed, epoch) only.

A resumed run must see exactly the data an uninterrupted one would, with or without
(persistent) worker processes. So nothing here draws from a global RNG:

- :class:`SeededSampler`: the training order is a permutation drawn from
  ``(seed, epoch)``; Lightning calls ``set_epoch`` at the start of every epoch.
- :class:`EpochBatchSampler`: cuts that order into batches, optionally *bucketed* (batches
  of similar lengths), shuffles the batches from ``(seed, epoch)``, and hands the dataset
  ``(epoch, index)`` keys, so each example knows its epoch even inside a persistent worker
  (the epoch is read from the inner sampler when the batches are made, in this process).
- :class:`TrainingExamples`: applies the per-example training transform under an RNG
  seeded from ``(seed, epoch, index)``; :class:`TrainingCollate` applies the batch
  transform under one seeded from the batch's first key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, Sampler

from attnlab.types import Batch

Key = tuple[int, int]
"""``(epoch, index)``: what the training loader asks its dataset for."""

KEY = "_key"
"""Example entry carrying its :data:`Key` from the dataset to the collate (removed there)."""


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (NumPy's ``SeedSequence``)."""
    return int(np.random.SeedSequence([p & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(1, np.uint64)[0] >> 1)


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Within the block torch's CPU RNG is seeded with ``seed``; outside it is as it was.

    Only the CPU generator: ``torch.manual_seed`` would also reseed every GPU's generator,
    which ``fork_rng(devices=[])`` does not restore (each augmented example would reset the
    GPU's dropout stream), and before a GPU is initialised it queues that call with a
    formatted stack trace (~0.8 ms per example, most of an augmented batch's cost).
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


class SeededSampler(Sampler[int]):
    """All ``n`` indices, in a permutation drawn from ``(seed, epoch)`` (or in order).

    Args:
        n: number of examples.
        seed: the run's seed.
        shuffle: permute (training) or keep the order (evaluation).
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=generator).tolist())


class EpochBatchSampler(BatchSampler):
    """Batches of the sampler's order, optionally bucketed by length, keyed by epoch.

    With ``lengths``, the order is cut into windows of ``window`` batches, each window is
    sorted by length and cut into batches: similar lengths share a batch (less padding).
    With ``shuffle`` the batches are then shuffled from ``(seed, epoch)``. With ``keyed``
    each index is handed out as ``(epoch, index)``. Under DDP Lightning re-creates this
    sampler around a distributed one; either way the epoch is the inner sampler's.

    Args:
        sampler: the order of examples (a :class:`SeededSampler`).
        batch_size: examples per batch.
        drop_last: drop the last, short batch.
        lengths: size of each example's input, or None for no bucketing.
        shuffle: shuffle the batches (training).
        seed: the run's seed (for that shuffle).
        keyed: yield ``(epoch, index)`` keys instead of plain indices (training).
        window: batches per sorted window; larger is less padding and less randomness.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        lengths: Sequence[int] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        keyed: bool = False,
        window: int = 50,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.shuffle, self.seed, self.keyed, self.window = lengths, shuffle, seed, keyed, window

    @property
    def epoch(self) -> int:
        """The sampler's epoch: Lightning calls ``set_epoch`` on the sampler (ours, or DDP's
        ``DistributedSampler``), not on the batch sampler."""
        return int(getattr(self.sampler, "epoch", 0))

    def _batches(self) -> list[list[int]]:
        order = list(self.sampler)
        if self.lengths is None:
            batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        else:
            span, batches = self.batch_size * self.window, []
            for start in range(0, len(order), span):
                chunk = sorted(order[start : start + span], key=lambda i: self.lengths[i])  # type: ignore[index]
                batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and self.lengths is not None:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, 1))
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[Any]]:
        for batch in self._batches():
            yield [(self.epoch, i) for i in batch] if self.keyed else batch


class TrainingExamples(Dataset):
    """Training examples fetched by ``(epoch, index)``, transformed from ``(seed, epoch, index)``.

    Args:
        examples: the training split's dataset.
        transform: applied to each example's ``inputs`` (e.g. torchvision v2 or torchaudio
            augmentations; they must draw from torch's RNG), or None.
        seed: the run's seed.
    """

    def __init__(self, examples: Dataset, transform: Callable[[Any], Any] | None, seed: int) -> None:
        self.examples, self.transform, self.seed = examples, transform, seed

    def __len__(self) -> int:
        return len(self.examples)  # type: ignore[arg-type]

    def __getitem__(self, key: Key) -> dict[str, Any]:
        epoch, index = key
        example = dict(self.examples[index])
        if self.transform is not None:
            with seeded_torch(derive_seed(self.seed, epoch, index)):
                example["inputs"] = self.transform(example["inputs"])
        example[KEY] = key
        return example


class TrainingCollate:
    """The source's collate, then the batch transform seeded from the batch's first ``(epoch, index)``.

    Args:
        collate: the source's collate function.
        transform: a batch-level training transform (MixUp, CutMix), or None.
        seed: the run's seed.
    """

    def __init__(
        self, collate: Callable[[list[dict[str, Any]]], Batch], transform: Callable[[Batch], Batch] | None, seed: int
    ) -> None:
        self.collate, self.transform, self.seed = collate, transform, seed

    def __call__(self, examples: list[dict[str, Any]]) -> Batch:
        keys = [ex.pop(KEY) for ex in examples]
        batch = self.collate(examples)
        if self.transform is None:
            return batch
        epoch, first = keys[0]
        with seeded_torch(derive_seed(self.seed, epoch, first, 2)):
            return self.transform(batch)
