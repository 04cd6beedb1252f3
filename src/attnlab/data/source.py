"""What a plugin's dataset source gives the core, and what the core gives it back.

A *source* is one typed object per dataset (``attnlab_vision.Digits``,
``attnlab_text.CoNLL``, ...) holding only that dataset's settings. The core
:class:`~attnlab.data.DataModule` calls :meth:`Source.load` once at set-up and gets a
:class:`SourceData`: three :class:`Split` objects, the task, the class names and the values
configs read as ``${from_data:...}``. Splitting helpers live in :mod:`attnlab.data.splits`,
the bad-file scan in :mod:`attnlab.data.files`; loaders, bucketing, transforms and the
split summary are the DataModule's.

Optional abilities are separate protocols, so the core asks ``isinstance`` instead of
looking for attributes: :class:`Downloads`, :class:`ChecksFiles`, :class:`HasRawFeatures`,
:class:`DeclaresTask` (the task known before anything is read, so the head and the
direction of the default metric are known before the data: Optuna needs it first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch.utils.data import Dataset, Subset

from attnlab.data.bad import BadItems
from attnlab.data.files import scan
from attnlab.types import Batch, DataSpec, Task

Example = dict[str, Any]
"""One example before collation: ``{"inputs": ..., "target": ...}``."""

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split's examples and what the core needs to know about them without reading them.

    Attributes:
        examples: a map-style dataset of :data:`Example` dicts.
        labels: the class id of each example (one label per example) for the split summary,
            or None (token labels, label sequences).
        lengths: the size of each example's input (tokens, samples) for bucketing, or None.
        files: the file each example is read from, for the bad-file scan; None when the
            examples are in memory.
        origin: where the examples come from (a folder, a file), for messages.
    """

    examples: Dataset
    labels: np.ndarray | None = None
    lengths: np.ndarray | None = None
    files: list[Path] | None = None
    origin: str = ""

    def __len__(self) -> int:
        return len(self.examples)  # type: ignore[arg-type]

    def subset(self, index: Sequence[int]) -> Split:
        """The examples at ``index``, in that order, with their labels, lengths and files."""
        index = [int(i) for i in index]
        pick = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            examples=Subset(self.examples, index),
            labels=None if self.labels is None else self.labels[pick],
            lengths=None if self.lengths is None else self.lengths[pick],
            files=None if self.files is None else [self.files[i] for i in index],
        )


@dataclass
class SourceData:
    """What :meth:`Source.load` returns: the splits and what the dataset declares about itself."""

    train: Split
    val: Split
    test: Split
    task: Task
    class_names: Sequence[str]
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(self.task, tuple(self.class_names), dict(self.values))

    def splits(self) -> dict[str, Split]:
        return {name: getattr(self, name) for name in SPLITS}


@dataclass(frozen=True)
class LoadContext:
    """What the core hands a source at load time.

    Attributes:
        save_dir: the run folder, where a source saves what it fits on the training split
            (a tokenizer, the label list) and finds it again (``attnlab-eval``); None: nowhere.
        bad: where a source reports input it cannot use (a malformed row); the DataModule
            then skips or stops as ``data.bad_files`` says.
        cache_dir: where file checks are remembered between runs (None: not remembered).
        checked: the files :meth:`readable` has looked at (the DataModule scans the rest).
    """

    save_dir: Path | None
    bad: BadItems
    cache_dir: Path | None = None
    checked: set[Path] = field(default_factory=set)

    def readable(self, files: Sequence[Path], check: Callable[[Path], None]) -> list[int]:
        """The indices of ``files`` that ``check`` can decode; the others are reported to :attr:`bad`.

        A source calls this on its pool *before* cutting splits, so that the splits are made
        of readable files (stratified splits keep their proportions). Files of the returned
        splits it did not pass here are scanned by the DataModule after loading.
        """
        found = scan(files, check, self.cache_dir)
        for i, reason in sorted(found.items()):
            self.bad.add(files[i], reason)
        self.checked.update(files)
        return [i for i in range(len(files)) if i not in found]


@runtime_checkable
class Source(Protocol):
    """A dataset: reads its splits and collates its examples into a :class:`~attnlab.types.Batch`."""

    def load(self, context: LoadContext) -> SourceData:
        """Read (generate, download) the dataset and cut its splits; called once per process."""
        ...

    def collate(self, examples: Sequence[Example]) -> Batch:
        """Pad a list of examples into a batch (``inputs``, ``target``, ``lengths``...)."""
        ...


@runtime_checkable
class DeclaresTask(Protocol):
    """A source that says what it predicts from its settings alone, before reading anything.

    ``predicts`` is its task, or None when only the data can tell (e.g. a Hub dataset whose
    text column may hold strings or word lists). :meth:`Source.load` must then give the same
    task; the DataModule checks it.
    """

    @property
    def predicts(self) -> Task | None: ...


@runtime_checkable
class Downloads(Protocol):
    """A source that fetches its files first (once per machine, in ``prepare_data``)."""

    def prepare(self) -> None: ...


@runtime_checkable
class ChecksFiles(Protocol):
    """A source whose examples are files; the core decodes each once at set-up.

    ``check_file`` raises (any exception) when ``path`` cannot be decoded the way
    ``load``'s examples read it; the message becomes the reason in ``bad_files.txt``.
    """

    def check_file(self, path: Path) -> None: ...


@runtime_checkable
class HasRawFeatures(Protocol):
    """A source that describes an example by plain features, for a scikit-learn baseline.

    ``raw_features`` gives a ``(F,)`` float array (or a ``(1, F)`` scipy sparse row) per
    example: pooled pixels for images, pooled log-mel statistics for audio, token counts
    for text. :meth:`attnlab.data.DataModule.raw_features` stacks them into ``(N, F)``.
    """

    def raw_features(self, example: Example) -> Any: ...
