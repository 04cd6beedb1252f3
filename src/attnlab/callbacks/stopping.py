"""Early stopping on the run's optimised metric, in its direction (Lightning's ``EarlyStopping``)."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge
from pytorch_lightning.callbacks import EarlyStopping

from attnlab.errors import ConfigError


def early_stopping(
    monitor: str,
    mode: Literal["min", "max"],
    patience: Annotated[int, Ge(1)] | None = None,
    min_delta: Annotated[float, Ge(0)] = 0.0,
) -> EarlyStopping | None:
    """The ``callbacks.early_stopping`` entry: stop when ``monitor`` has not improved by more
    than ``min_delta`` in ``patience`` validations; None (off) when ``patience`` is null.

    ``monitor`` and ``mode`` come from the run's objective (``optimized_metric`` and its
    direction), so the stop and the kept checkpoint agree on what "better" means. With a
    schedule written in epochs (``scheduler=warmup_cosine``), stopping early also stops
    before the learning rate has decayed.
    """
    if patience is None:
        return None
    if mode not in ("min", "max"):
        raise ConfigError(f"callbacks.early_stopping.mode={mode!r} must be min or max")
    if patience < 1 or min_delta < 0:
        raise ConfigError("callbacks.early_stopping.patience must be >= 1 and min_delta >= 0")
    return EarlyStopping(monitor=monitor, mode=mode, patience=patience, min_delta=min_delta, strict=True)
