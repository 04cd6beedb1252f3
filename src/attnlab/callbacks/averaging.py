"""An exponential moving average of the weights, validated, checkpointed and tested.

Lightning 2.6's ``EMAWeightAveraging`` keeps the average (``torch.optim.swa_utils.AveragedModel``,
buffers included) and swaps it in for each validation epoch, so ``val/*`` metrics, early
stopping and checkpoint selection all see the averaged weights; every checkpoint's
``state_dict`` holds the average (the raw weights travel as ``current_model_state``, for
resuming); at the end of training the average is copied into the model.

One thing it gets wrong for attnlab's flow (fit, then ``trainer.test(ckpt_path=best)`` on the
same trainer): the callback outlives ``fit``, and when the test loads ``best.ckpt`` it puts the
*raw* weights back from ``current_model_state``, so the in-run test would score the
non-averaged model while ``attnlab-eval`` (a fresh trainer) scores the average. :class:`EMA`
restores the raw weights only when resuming a fit, so a test always scores what the
checkpoint's ``state_dict`` holds: the average.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytorch_lightning as pl
from annotated_types import Ge, Gt, Lt
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_lightning.trainer.states import TrainerFn

from attnlab.errors import ConfigError


class EMA(EMAWeightAveraging):
    """``EMAWeightAveraging`` whose average is what every stage after training evaluates.

    Args:
        decay: weight of the old average at each update (timm uses 0.9998 for ImageNet
            runs of ~300k steps; ``1 - 1 / decay`` steps is the memory of the average, so keep it
            well below a run's step count).
        every_n_steps: update the average every this many optimizer steps.
        start_step: first optimizer step (0-based) that updates the average; before it the
            average follows the weights.
    """

    def __init__(self, decay: float, every_n_steps: Annotated[int, Ge(1)] = 1, start_step: Annotated[int, Ge(0)] = 0):
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"callbacks.ema.decay={decay} must be in (0, 1), or null for no averaging")
        if every_n_steps < 1 or start_step < 0:
            raise ConfigError("callbacks.ema.every_n_steps must be >= 1 and callbacks.ema.start_step >= 0")
        super().__init__(decay=decay, update_every_n_steps=every_n_steps, update_starting_at_step=start_step)
        self.decay = decay

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Resuming a fit restores both the average and the raw weights; any other stage keeps
        the checkpoint's ``state_dict``, which is the average."""
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def ema(
    decay: Annotated[float, Gt(0), Lt(1)] | None = None,
    every_n_steps: Annotated[int, Ge(1)] = 1,
    start_step: Annotated[int, Ge(0)] = 0,
) -> EMA | None:
    """The ``callbacks.ema`` entry: an :class:`EMA` callback, or None (off) when ``decay`` is null."""
    if decay is None:
        return None
    return EMA(decay=decay, every_n_steps=every_n_steps, start_step=start_step)
