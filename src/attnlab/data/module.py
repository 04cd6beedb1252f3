"""The one DataModule: a plugin's source, split, checked and summarised once, then batched.

Every data config is this class with a ``source:`` node (``data.source._target_`` is the
plugin's dataset class). Set-up, once per process:

1. the source loads its splits (:meth:`attnlab.data.Source.load`);
2. files that cannot be decoded are found (:mod:`attnlab.data.files`) and, with rows the
   source could not parse, skipped or refused as ``bad_files`` says;
3. the spec is checked (task, classes, values), empty splits and a single class are
   one-line errors, and a summary of the splits (examples per split and class) is logged.

Loaders: the training order, per-example and batch transforms depend on ``(seed, epoch)``
only (:mod:`attnlab.data.sampling`), so a resumed run sees the data an uninterrupted one
would.
"""

from __future__ import annotations

import logging
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytorch_lightning as pl
import torch
from annotated_types import Ge
from torch.utils.data import DataLoader

from attnlab.data.bad import BadItems, Policy
from attnlab.data.sampling import EpochBatchSampler, SeededSampler, TrainingCollate, TrainingExamples
from attnlab.data.source import (
    SPLITS,
    ChecksFiles,
    DeclaresTask,
    Downloads,
    HasRawFeatures,
    LoadContext,
    Source,
    SourceData,
    Split,
)
from attnlab.errors import ConfigError, DataError
from attnlab.types import Batch, DataSpec

log = logging.getLogger(__name__)

SUMMARY_CLASSES = 12
"""Classes named in the logged split summary (the rest are counted together)."""


def leave_sigterm_to_the_trainer(worker_id: int) -> None:
    """A loader worker ignores SIGTERM: the training process stops the workers itself.

    SLURM, systemd and ``kill -- -PGID`` send SIGTERM to every process of a job. A worker
    killed by it first makes the training process fail with "DataLoader worker ... is killed
    by signal" instead of saving ``last.ckpt`` and printing how to resume; PyTorch already
    leaves SIGINT (Ctrl-C) to the training process in the same way. A worker still ends when
    the training process does (PyTorch's watchdog) and on SIGKILL.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class DataModule(pl.LightningDataModule):
    """Train, validation and test data of one source, for any modality.

    Args:
        source: the dataset (a plugin's source class, ``data.source``).
        batch_size: examples per batch.
        num_workers: DataLoader worker processes (0: load in the training process).
        seed: the run's seed (``${seed}``): fixes the training order and the training
            transforms per epoch. Splits have their own seed (the source's ``split_seed``).
            None draws one at random.
        bucket: batch examples of similar length together (less padding); needs a source
            that gives lengths.
        bad_files: ``skip`` leaves files and rows that cannot be read out (one warning;
            listed in ``<save_dir>/bad_files.txt``), ``error`` stops the run naming them.
        save_dir: the run folder: the source saves what it fits there (a tokenizer, the
            labels), and ``bad_files.txt`` goes there.
        cache_dir: where file checks are remembered between runs; None decodes every file
            at every set-up.
        train_transform: applied to each training example's ``inputs``, seeded by
            ``(seed, epoch, index)``; None for none.
        batch_transform: applied to each collated training batch (e.g. MixUp adding
            ``soft_target``), seeded by ``(seed, epoch, first index)``; None for none.
    """

    def __init__(
        self,
        source: Source,
        batch_size: Annotated[int, Ge(1)] = 32,
        num_workers: Annotated[int, Ge(0)] = 0,
        seed: int | None = None,
        bucket: bool = False,
        bad_files: Policy = "skip",
        save_dir: str | None = None,
        cache_dir: str | None = None,
        train_transform: Callable[[Any], Any] | None = None,
        batch_transform: Callable[[Batch], Batch] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(source, Source):
            raise ConfigError(
                f"data.source must be a dataset source with load() and collate(); got {type(source).__name__}"
            )
        if batch_size < 1 or num_workers < 0:
            bad = f"data.batch_size={batch_size}" if batch_size < 1 else f"data.num_workers={num_workers}"
            raise ConfigError(f"{bad} is out of range; batch_size must be >= 1 and num_workers >= 0")
        self.source = source
        self.batch_size, self.num_workers, self.bucket = batch_size, num_workers, bucket
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        self.save_dir = Path(save_dir).expanduser() if save_dir is not None else None
        self.bad = BadItems(bad_files, self.save_dir)  # checks the policy now, not at set-up
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.train_transform, self.batch_transform = train_transform, batch_transform
        self._data: SourceData | None = None

    # --- set-up ---------------------------------------------------------------------

    def prepare_data(self) -> None:
        if isinstance(self.source, Downloads):
            self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        if self._data is not None:
            return
        context = LoadContext(save_dir=self.save_dir, bad=self.bad, cache_dir=self.cache_dir)
        data = self.source.load(context)
        if isinstance(self.source, ChecksFiles):
            self._drop_unreadable(data, context)
        self.bad.settle()
        self._check(data)
        self._data = data
        log.info("data: %s", summary(data))

    def set_transforms(
        self,
        train_transform: Callable[[Any], Any] | None,
        batch_transform: Callable[[Batch], Batch] | None,
    ) -> None:
        """Sets the training transforms and tries them on the first training examples.

        Configs build the transforms after set-up (they may read the data's values, e.g.
        its number of classes), then hand them over here. The try runs the training path
        (:class:`TrainingExamples`, :class:`TrainingCollate`) on two examples under a
        forked RNG, so a transform that cannot take this data (an image augmentation given
        waveforms) fails now, in one line, instead of in a loader worker after minutes.
        """
        self.train_transform, self.batch_transform = train_transform, batch_transform
        if train_transform is None and batch_transform is None:
            return
        split = self.split("train")
        examples = TrainingExamples(split.examples, train_transform, self.seed)
        collate = TrainingCollate(self.source.collate, batch_transform, self.seed)
        collate([examples[(0, i)] for i in range(min(2, len(split)))])

    def _drop_unreadable(self, data: SourceData, context: LoadContext) -> None:
        """Decode, in one scan, the split files the source did not check while loading; drop bad ones."""
        assert isinstance(self.source, ChecksFiles)
        splits = {name: split for name, split in data.splits().items() if split.files is not None}
        files = sorted({f for split in splits.values() for f in split.files or [] if f not in context.checked})
        kept = set(context.readable(files, self.source.check_file)) if files else set()
        bad = {f for i, f in enumerate(files) if i not in kept}
        bad |= {f for where, _ in self.bad.items for f in [Path(where)]}
        for name, split in splits.items():
            assert split.files is not None
            good = [i for i, f in enumerate(split.files) if f not in bad]
            if len(good) < len(split):
                setattr(data, name, split.subset(good))

    def _check(self, data: SourceData) -> None:
        spec = data.spec
        try:
            spec.check()
        except ValueError as exc:
            raise DataError(f"{type(self.source).__name__} gives a broken data spec: {exc}") from None
        declared = self.source.predicts if isinstance(self.source, DeclaresTask) else None
        if declared is not None and declared != spec.task:
            raise DataError(
                f"{type(self.source).__name__} declares that it predicts {declared!r} but its data has "
                f"task {spec.task!r}; make `predicts` say what load() gives"
            )
        for name, split in data.splits().items():
            if len(split) == 0:
                why = f"; all its {len(self.bad)} unreadable input(s) were left out" if len(self.bad) else ""
                where = f" ({split.origin})" if split.origin else ""
                raise DataError(f"the {name} split{where} has no examples{why}; give it data")
        if spec.num_classes < 2:
            counts = ", ".join(f"{n}: {len(s)}" for n, s in data.splits().items())
            raise DataError(
                f"the data has a single class {spec.class_names[0]!r} ({counts} examples); "
                "a classifier needs at least two"
            )

    def _ready(self) -> SourceData:
        if self._data is None:
            self.setup()
        assert self._data is not None
        return self._data

    # --- what the data declares -----------------------------------------------------

    @property
    def spec(self) -> DataSpec:
        """The task, the classes and the values configs read as ``${from_data:...}``."""
        return self._ready().spec

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    def data_info(self) -> dict[str, Any]:
        """Every ``${from_data:<key>}`` value (:meth:`attnlab.types.DataSpec.info`)."""
        return self.spec.info()

    def split(self, name: str) -> Split:
        """The ``train``, ``val`` or ``test`` split, after bad inputs were left out."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; splits: {', '.join(SPLITS)}")
        return getattr(self._ready(), name)

    def raw_features(self, name: str, index: Sequence[int] | None = None) -> tuple[Any, np.ndarray]:
        """Plain features ``(N, F)`` (NumPy or SciPy sparse) and class ids ``(N,)`` of a split.

        For a scikit-learn baseline on the same split the model sees. Needs a source with
        ``raw_features`` and one label per example.

        Args:
            name: ``train``, ``val`` or ``test``.
            index: only these examples of the split (e.g. a subset of a large training
                split), in this order; None for all.

        Raises:
            ConfigError: the source gives no raw features, or the task is not ``sequence``.
        """
        split = self.split(name)
        if not isinstance(self.source, HasRawFeatures) or split.labels is None:
            raise ConfigError(
                f"{type(self.source).__name__} gives no raw features per example (task {self.spec.task!r})"
            )
        chosen = range(len(split)) if index is None else [int(i) for i in index]
        rows = [self.source.raw_features(split.examples[i]) for i in chosen]
        labels = split.labels[np.asarray(list(chosen), dtype=np.int64)]
        if rows and not isinstance(rows[0], np.ndarray):
            import scipy.sparse

            return scipy.sparse.vstack(rows).tocsr(), labels
        return np.stack(rows).astype(np.float32), labels

    # --- loaders --------------------------------------------------------------------

    def _lengths(self, split: Split) -> list[int] | None:
        if not self.bucket:
            return None
        if split.lengths is None:
            raise ConfigError(f"data.bucket=true needs lengths, but {type(self.source).__name__} gives none")
        return split.lengths.tolist()

    def _loader(self, name: str, train: bool) -> DataLoader:
        split = self.split(name)
        sampler = SeededSampler(len(split), self.seed, shuffle=train)
        batches = EpochBatchSampler(
            sampler, self.batch_size, False, self._lengths(split), shuffle=train, seed=self.seed, keyed=train
        )
        if train:
            dataset: Any = TrainingExamples(split.examples, self.train_transform, self.seed)
            collate: Any = TrainingCollate(self.source.collate, self.batch_transform, self.seed)
        else:
            dataset, collate = split.examples, self.source.collate
        return DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # worker seeds: not the global RNG
            worker_init_fn=leave_sigterm_to_the_trainer,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)


def summary(data: SourceData) -> str:
    """One line: examples per split and, with a label per example, per class and split."""
    splits = data.splits()
    line = ", ".join(f"{name} {len(split)}" for name, split in splits.items())
    line = f"{data.task} task, {len(data.class_names)} classes; examples: {line}"
    if any(split.labels is None for split in splits.values()):
        return line
    counts = {name: Counter(split.labels.tolist()) for name, split in splits.items()}  # type: ignore[union-attr]
    names = list(data.class_names)
    shown = [
        f"{names[k]} {'/'.join(str(counts[s][k]) for s in splits)}" for k in range(min(len(names), SUMMARY_CLASSES))
    ]
    if len(names) > SUMMARY_CLASSES:
        shown.append(f"and {len(names) - SUMMARY_CLASSES} more classes")
    return f"{line}; per class ({'/'.join(splits)}): {', '.join(shown)}"
