"""Callbacks that keep a run's work safe: a NaN guard, and the run's config inside every checkpoint."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
from torch import Tensor

from attnlab.errors import TrainingError


class NonFiniteGuard(pl.Callback):
    """Stops training before a NaN or infinite loss reaches the weights.

    The check runs before the backward pass, so the weights and the checkpoints on disk
    are still the last good ones when the run stops.
    """

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        value = float(loss.detach())
        if math.isfinite(value):
            return
        kept = [c.last_model_path for c in trainer.checkpoint_callbacks if getattr(c, "last_model_path", "")]
        where = f"the last good checkpoint is {kept[0]}" if kept else "no checkpoint had been saved yet"
        raise TrainingError(
            f"training loss became {value} at step {trainer.global_step} (epoch {trainer.current_epoch}); "
            f"{where}; lower optimizer.lr or set trainer.gradient_clip_val"
        )


class EmbedRunConfig(pl.Callback):
    """Stores the run's resolved config and data-derived values in every checkpoint.

    ``attnlab-eval`` rebuilds the exact model and data from a checkpoint alone.
    """

    KEY = "attnlab"

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any]) -> None:
        self.payload = {"config": config, "data_info": data_info}

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[self.KEY] = self.payload
