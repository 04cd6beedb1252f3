"""Datasets laid out as folders: one sub-folder of files per class.

``root/<class>/**/<file>``, or ``root/train/<class>/...`` with optional ``val/`` and
``test/`` folders of the same classes; splits that have no folder are cut from the
training pool, stratified, by the source's ``split_seed``. Files are chosen by suffix,
then kept only if they decode (``readable``, the bad-file scan), before splits are cut, so
that every split keeps the classes' proportions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attnlab.data.splits import stratified_split
from attnlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLIT_FOLDERS = ("train", "val", "test")


@dataclass
class Labelled:
    """Files and the class id of each."""

    files: list[Path]
    labels: np.ndarray
    origin: str

    def subset(self, index: Sequence[int]) -> Labelled:
        return Labelled([self.files[i] for i in index], self.labels[np.asarray(index, dtype=np.int64)], self.origin)


def require_root(root: str | None, key: str, fix: str) -> Path:
    """``root`` as an existing folder.

    Raises:
        ConfigError: ``root`` is not set; DataError: it does not exist or is not a folder.
    """
    if root is None:
        raise ConfigError(f"{key} is not set; {fix}")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"{key}={root} does not exist; {fix}")
    if not path.is_dir():
        raise DataError(f"{key}={root} is not a folder; {fix}")
    return path


def _classes(folder: Path) -> list[str]:
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


Readable = Callable[[list[Path]], list[int]]
"""The indices of the files that decode (:meth:`attnlab.data.LoadContext.readable`)."""


def read_classes(
    folder: Path, suffixes: Sequence[str], readable: Readable, classes: list[str] | None = None
) -> tuple[list[str], Labelled]:
    """The class folders of ``folder`` and their readable files with one of ``suffixes`` (in name order).

    Args:
        folder: holds one sub-folder per class.
        suffixes: lowercase file suffixes to take (``.png``, ``.wav``...).
        readable: keeps the files that decode; the others are reported as bad inputs.
        classes: the classes expected (those of the training folder), or None.

    Raises:
        DataError: no class folders, a class folder with no (readable) such files, or other
            classes than ``classes``.
    """
    found = _classes(folder)
    if not found:
        raise DataError(f"{folder} has no class sub-folders; put each class's files in a folder named after it")
    if classes is not None and found != classes:
        raise DataError(f"{folder} has classes {found}, but the training folder has {classes}")
    files: list[Path] = []
    labels: list[int] = []
    ignored = 0
    for k, name in enumerate(found):
        entries = sorted(p for p in (folder / name).rglob("*") if not p.is_dir() and not p.name.startswith("."))
        chosen = [p for p in entries if p.suffix.lower() in suffixes]
        ignored += len(entries) - len(chosen)
        if not chosen:
            raise DataError(
                f"class folder {folder / name} has no {'/'.join(suffixes)} files; remove it or add examples"
            )
        files += chosen
        labels += [k] * len(chosen)
    if ignored:
        log.info("%s: ignored %d file(s) without a %s suffix", folder, ignored, "/".join(suffixes))
    pool = Labelled(files, np.asarray(labels, dtype=np.int64), str(folder))
    kept = pool.subset(readable(files))
    for k, name in enumerate(found):
        if not (kept.labels == k).any():
            total = int((pool.labels == k).sum())
            raise DataError(
                f"class folder {folder / name} has no readable files: all {total} cannot be decoded "
                "(see bad_files.txt in the run folder); replace them or remove the folder"
            )
    return found, kept


def folder_splits(
    root: Path, suffixes: Sequence[str], fractions: dict[str, float], seed: int, readable: Readable
) -> tuple[list[str], dict[str, Labelled]]:
    """Class names and the ``train``/``val``/``test`` files of a class-folder dataset.

    Args:
        root: the class folders, or ``train/`` (and optionally ``val/``, ``test/``) of them.
        suffixes: file suffixes to take.
        fractions: ``{"val_fraction": ..., "test_fraction": ...}``: the shares of the
            training pool cut for splits that have no folder.
        seed: fixes those cuts.
        readable: keeps the files that decode (before any cut).
    """
    top = root / "train" if (root / "train").is_dir() else root
    names, pool = read_classes(top, suffixes, readable)
    given = {
        s: read_classes(root / s, suffixes, readable, names)[1]
        for s in ("val", "test")
        if top != root and (root / s).is_dir()
    }
    wanted = {key: f for key, f in fractions.items() if key.removesuffix("_fraction") not in given}
    parts = stratified_split(pool.labels, wanted, seed, names) if wanted else [np.arange(len(pool.files))]
    splits = {"train": pool.subset(parts[0])}
    for key, part in zip(wanted, parts[1:]):
        splits[key.removesuffix("_fraction")] = pool.subset(part)
    splits.update(given)
    return names, {s: splits[s] for s in SPLIT_FOLDERS}
