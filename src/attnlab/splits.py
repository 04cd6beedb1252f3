"""Seeded dataset splits shared by the plugins: stratified by label, or grouped (e.g. by speaker)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from attnlab.errors import ConfigError


def _check(fractions: Sequence[float]) -> None:
    if any(f <= 0 for f in fractions) or sum(fractions) >= 1:
        raise ConfigError(f"split fractions {list(fractions)} must be > 0 and sum to less than 1")


def stratified_split(labels: Sequence[Any], fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Sorted indices of ``[rest, *fractions]`` parts, stratified by label, fixed by ``seed``."""
    _check(fractions)
    labels = np.asarray(labels)
    rest = np.arange(len(labels))
    parts: list[np.ndarray] = []
    remaining = 1.0
    for fraction in fractions:
        rest, part = train_test_split(rest, test_size=fraction / remaining, random_state=seed, stratify=labels[rest])
        parts.append(np.sort(part))
        remaining -= fraction
    return [np.sort(rest), *parts]


def grouped_split(groups: Sequence[Any], fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Like :func:`stratified_split`, but whole groups go to one part (held-out speakers).

    Each part gets at least one group; the rest keeps at least one.
    """
    _check(fractions)
    names = sorted(set(groups))
    if len(names) < len(fractions) + 1:
        raise ConfigError(f"{len(names)} groups cannot be split into {len(fractions) + 1} parts; add more")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    sizes = [max(1, round(f * len(names))) for f in fractions]
    if sum(sizes) >= len(names):
        raise ConfigError(f"split fractions {list(fractions)} leave no group of {len(names)} for training")
    chosen, start = [], 0
    for size in sizes:
        chosen.append(set(order[start : start + size]))
        start += size
    groups = np.asarray(groups)
    held = [np.flatnonzero(np.isin(groups, sorted(c))) for c in chosen]
    rest = np.flatnonzero(~np.isin(groups, sorted(set().union(*chosen))))
    return [rest, *held]
