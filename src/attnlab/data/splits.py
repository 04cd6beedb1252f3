"""Seeded dataset splits: stratified by class, or grouped (whole speakers to one split).

A split that cannot be made is one line with the counts that prevent it: a class with
too few examples for the requested fractions, a single class, too few groups. The seed
is the source's ``split_seed``, independent of the training seed, so runs with different
seeds see the same splits.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from attnlab.errors import ConfigError, DataError

KEY = "data.source.{}"
"""How messages name a fraction: it is a setting of the dataset's source."""


def _shown(fractions: dict[str, float]) -> str:
    return ", ".join(f"{KEY.format(k)}={v}" for k, v in fractions.items())


def check_fractions(fractions: dict[str, float]) -> None:
    """Each share is in (0, 1) and together they leave some training data.

    Raises:
        ConfigError: naming the keys (``val_fraction``, ``test_fraction``) and their values.
    """
    if any(not 0 < f < 1 for f in fractions.values()) or sum(fractions.values()) >= 1:
        raise ConfigError(f"split fractions {_shown(fractions)} must each be > 0 and sum to less than 1")


def _counts(labels: Sequence[Any], names: Sequence[str] | None) -> str:
    counts = Counter(labels)
    shown = [
        f"{names[k] if names is not None else k} {n}" for k, n in sorted(counts.items(), key=lambda kv: str(kv[0]))
    ]
    return ", ".join(shown[:20]) + (", ..." if len(shown) > 20 else "")


def stratified_split(
    labels: Sequence[Any], fractions: dict[str, float], seed: int, names: Sequence[str] | None = None
) -> list[np.ndarray]:
    """Sorted indices of ``[rest, *fractions]``, each part holding every class in proportion.

    Args:
        labels: a label per example (class ids or strings).
        fractions: share of all examples per held-out part, e.g. ``{"val_fraction": 0.1}``.
        seed: fixes the split.
        names: class names for messages (``labels`` index them).

    Raises:
        DataError: a single class, or a class or a part too small to hold every class.
    """
    from sklearn.model_selection import train_test_split

    check_fractions(fractions)
    labels = np.asarray(labels)
    n, parts = len(labels), len(fractions) + 1
    counts = Counter(labels.tolist())
    where = f"{n} examples ({_counts(labels.tolist(), names)})"
    if len(counts) < 2:
        raise DataError(f"cannot split by class: all {where} are of one class; a classifier needs two or more")
    rare = [k for k, c in counts.items() if c < parts]
    if rare:
        name = names[rare[0]] if names is not None else rare[0]
        raise DataError(
            f"cannot split {where} into {parts} stratified parts: class {name!r} has {counts[rare[0]]}, "
            f"each class needs at least {parts}; add examples, give val/test data, or lower the fractions"
        )
    rest = np.arange(n)
    out: list[np.ndarray] = []
    remaining = 1.0
    for key, fraction in fractions.items():
        size = math.ceil(fraction / remaining * len(rest))  # as scikit-learn rounds a share
        if size < len(counts) or len(rest) - size < len(counts):
            raise DataError(
                f"cannot split {where} by class: {KEY.format(key)}={fraction} gives {size} of {len(rest)} examples, "
                f"and every part needs one of each of the {len(counts)} classes; change it or add examples"
            )
        try:
            rest, part = train_test_split(
                rest, test_size=fraction / remaining, random_state=seed, stratify=labels[rest]
            )
        except ValueError as exc:  # sklearn's own limits, e.g. a class left with one example
            raise DataError(f"cannot split {where} by class at {KEY.format(key)}={fraction}: {exc}") from None
        out.append(np.sort(part))
        remaining -= fraction
    return [np.sort(rest), *out]


def grouped_split(groups: Sequence[Any], fractions: dict[str, float], seed: int) -> list[np.ndarray]:
    """Like :func:`stratified_split`, but whole groups go to one part (held-out speakers).

    Each part gets at least one group; the rest keeps at least one.

    Raises:
        DataError: fewer groups than parts.
    """
    check_fractions(fractions)
    names = sorted(set(groups))
    parts = len(fractions) + 1
    if len(names) < parts:
        raise DataError(f"{len(names)} group(s) ({', '.join(map(str, names[:10]))}) cannot be split into {parts} parts")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    sizes = [max(1, round(f * len(names))) for f in fractions.values()]
    if sum(sizes) >= len(names):
        raise DataError(
            f"split fractions {_shown(fractions)} leave none of the {len(names)} groups for training; lower them"
        )
    chosen, start = [], 0
    for size in sizes:
        chosen.append(set(order[start : start + size]))
        start += size
    array = np.asarray(groups)
    held = [np.flatnonzero(np.isin(array, sorted(c))) for c in chosen]
    rest = np.flatnonzero(~np.isin(array, sorted(set().union(*chosen))))
    return [rest, *held]


def random_split(n: int, fractions: dict[str, float], seed: int) -> list[np.ndarray]:
    """Sorted indices of ``[rest, *fractions]`` of ``n`` examples, at random (no classes to balance).

    Raises:
        DataError: too few examples for a non-empty part each.
    """
    check_fractions(fractions)
    sizes = [round(f * n) for f in fractions.values()]
    if min(sizes, default=1) < 1 or n - sum(sizes) < 1:
        raise DataError(f"{n} examples cannot be split with {_shown(fractions)}: every part needs one; add examples")
    order = np.random.default_rng(seed).permutation(n)
    out, start = [], 0
    for size in sizes:
        out.append(np.sort(order[start : start + size]))
        start += size
    return [np.sort(order[start:]), *out]
