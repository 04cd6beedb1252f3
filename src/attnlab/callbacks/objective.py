"""The objective's value at every evaluation of a run, and its best so far."""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl

from attnlab.objective import Objective


class TrackObjective(pl.Callback):
    """Records the objective's metric each time it is computed and keeps the best in its direction.

    What a sweep gets back from a run is :attr:`best`, not the last epoch's value (a run
    that peaks early and then overfits is judged by its peak, as its best checkpoint is).
    Validation metrics are read after each validation (sanity checks aside), training
    metrics at the end of each training epoch. The values travel in checkpoints, so a
    resumed run's best covers the epochs before the interruption too.

    Args:
        objective: the run's metric and direction.
    """

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.values: list[tuple[int, float]] = []

    @property
    def best(self) -> float | None:
        """The best value so far (None before the first finite one)."""
        return self.objective.best(value for _, value in self.values)

    def _record(self, trainer: pl.Trainer) -> None:
        value = trainer.callback_metrics.get(self.objective.metric)
        if value is not None and not math.isnan(float(value)):
            self.values.append((trainer.current_epoch, float(value)))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self.objective.metric.startswith("val/"):
            self._record(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.objective.metric.startswith("val/"):
            self._record(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.objective.metric, "values": [list(v) for v in self.values]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("metric") == self.objective.metric:  # a resumed run may optimise another metric
            self.values = [(int(epoch), float(value)) for epoch, value in state_dict["values"]]
