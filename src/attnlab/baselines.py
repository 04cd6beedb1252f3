"""The trivial baselines of a run's test split, reported beside its result.

A figure means something next to what a user would otherwise run on the same split
(a majority-class guess, a linear model on plain features). After training, a run adds:

- ``test/baseline/majority_acc``: the share of test labels equal to the most frequent
  training label (per example for ``sequence`` tasks, per token for ``token`` tasks);
- ``test/baseline/linear_acc``: scikit-learn's logistic regression on the source's raw
  features (:class:`~attnlab.data.HasRawFeatures`: plain per-example features each plugin
  chooses, dense or sparse), fitted on the training split with ``C`` chosen on the
  validation split, scored on the whole test split (``sequence`` tasks only).

Where a baseline does not apply it is skipped with a reason (logged): label sequences
(CTC) have no majority class; a source without raw features has no linear baseline. To
stay fast on large sets, the linear model is fitted on at most :data:`MAX_TRAIN` training
and chosen on at most :data:`MAX_VAL` validation examples (a fixed random subset); the
test split is always scored whole. ``metrics.json``, the final table and the loggers get
the values; :func:`attnlab.report.below_baseline` says which results fall below their baseline.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnlab.data import DataModule, HasRawFeatures
from attnlab.types import IGNORE_INDEX

log = logging.getLogger(__name__)

PREFIX = "test/baseline/"
MAX_TRAIN = 10_000
"""Training examples the linear model is fitted on, at most."""
MAX_VAL = 5_000
"""Validation examples ``C`` is chosen on, at most."""
C_GRID = (0.01, 0.1, 1.0, 10.0)
"""Inverse regularisation strengths tried, weakest regularisation last (warm-started in that order)."""
SUBSET_SEED = 0
"""Fixes the subsets of large splits, so every run on the same data has the same baseline."""


@dataclass
class Baselines:
    """Baseline values by metric key, and why the others were not computed.

    Attributes:
        values: e.g. ``{"test/baseline/majority_acc": 0.1, "test/baseline/linear_acc": 0.89}``.
        skipped: baseline name -> reason, e.g. ``{"linear": "... gives no raw features"}``.
        linear_c: the ``C`` the linear model was chosen with, when it was fitted.
    """

    values: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    linear_c: float | None = None


def compute(datamodule: DataModule) -> Baselines:
    """The baselines of ``datamodule``'s test split (set up), fitted on its training split."""
    result = Baselines()
    task = datamodule.spec.task
    if task == "label_sequence":
        reason = "a label sequence (CTC) has no majority class or linear model; predicting nothing has CER 1.0"
        result.skipped.update(majority=reason, linear=reason)
        return result
    train, test = labels_of(datamodule, "train"), labels_of(datamodule, "test")
    result.values[PREFIX + "majority_acc"] = majority_accuracy(train, test)
    if task != "sequence":
        result.skipped["linear"] = f"a {task} task has one label per token, and sources give features per example"
    elif not isinstance(datamodule.source, HasRawFeatures):
        result.skipped["linear"] = f"{type(datamodule.source).__name__} gives no raw features (HasRawFeatures)"
    else:
        accuracy, c = linear_accuracy(datamodule)
        result.values[PREFIX + "linear_acc"], result.linear_c = accuracy, c
    return result


def labels_of(datamodule: DataModule, split: str) -> np.ndarray:
    """Class ids of a split: one per example (``sequence``) or every labelled token (``token``)."""
    part = datamodule.split(split)
    if part.labels is not None:
        return np.asarray(part.labels)
    targets = (np.asarray(part.examples[i]["target"]).ravel() for i in range(len(part)))
    flat = np.concatenate(list(targets)) if len(part) else np.empty(0, dtype=np.int64)
    return flat[(flat != IGNORE_INDEX) & (flat >= 0)]


def majority_accuracy(train: np.ndarray, test: np.ndarray) -> float:
    """Accuracy on ``test`` of always predicting the most frequent class of ``train`` (ties: the lowest id)."""
    counts = Counter(train.tolist())
    top = max(counts.values())
    guess = min(k for k, n in counts.items() if n == top)
    return float(np.mean(test == guess)) if len(test) else float("nan")


def subset(n: int, limit: int) -> np.ndarray | None:
    """A fixed random choice of ``limit`` of ``n`` indices, sorted; None when all ``n`` fit."""
    if n <= limit:
        return None
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(n, size=limit, replace=False))


def linear_accuracy(datamodule: DataModule) -> tuple[float, float]:
    """Test accuracy of logistic regression on raw features, and the ``C`` chosen on validation.

    Dense features are standardised, sparse ones (counts) scaled by their largest
    absolute value (sparsity kept); scaling is fitted on the training features.
    """
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import MaxAbsScaler, StandardScaler

    x_train, y_train = datamodule.raw_features("train", subset(len(datamodule.split("train")), MAX_TRAIN))
    x_val, y_val = datamodule.raw_features("val", subset(len(datamodule.split("val")), MAX_VAL))
    x_test, y_test = datamodule.raw_features("test")
    scaler = (MaxAbsScaler() if sparse.issparse(x_train) else StandardScaler()).fit(x_train)
    x_train, x_val, x_test = (scaler.transform(x) for x in (x_train, x_val, x_test))
    model = LogisticRegression(max_iter=500, warm_start=True)
    best: tuple[float, float, Any] | None = None
    for c in C_GRID:
        model.set_params(C=c).fit(x_train, y_train)
        score = model.score(x_val, y_val)
        if best is None or score > best[0]:
            best = (score, c, (model.coef_.copy(), model.intercept_.copy()))
    assert best is not None
    model.coef_, model.intercept_ = best[2]
    return float(model.score(x_test, y_test)), best[1]


def report(datamodule: DataModule, loggers: Iterable[Any] = (), step: int | None = None) -> dict[str, float]:
    """Computes the baselines, logs them (and what was skipped) and sends them to ``loggers``.

    Args:
        datamodule: the run's data, set up.
        loggers: Lightning loggers (the trainer's: W&B's summary and the run's history get them).
        step: the step to log them at (the last one).
    """
    start = time.perf_counter()
    found = compute(datamodule)
    spent = time.perf_counter() - start
    shown = ", ".join(f"{k.removeprefix(PREFIX)} {v:.4f}" for k, v in found.values.items())
    chosen = f" (C={found.linear_c:g} chosen on val)" if found.linear_c is not None else ""
    log.info("baselines of the test split: %s%s, in %.1f s", shown or "none", chosen, spent)
    for name, reason in found.skipped.items():
        log.info("no %s baseline: %s", name, reason)
    for logger in loggers if found.values else ():
        logger.log_metrics(found.values, step=step)
        logger.save()
    return found.values
