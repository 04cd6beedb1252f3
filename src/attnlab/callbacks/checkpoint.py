"""``last.ckpt``: the state at the end of the latest epoch, enough to continue the run exactly.

Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` as a copy of the file
it has just saved: in ``on_train_epoch_end``/``on_validation_end`` it saves "last" only when
``_last_global_step_saved == trainer.global_step``, i.e. when a top-k file was written at
this step. Next to a monitored top-1 checkpoint that is only in epochs that improved the
metric, so ``last.ckpt`` held the best epoch, not the latest. Here "latest" is its own
trigger: :class:`LastCheckpoint` writes at the end of every training epoch, after
validation and after the best checkpoint was updated, and nowhere else (not at Ctrl-C,
SIGTERM, a NaN stop or an exception), so ``last.ckpt`` is always an epoch boundary.

Resuming from an epoch boundary gives the same run as not stopping only if the random
numbers drawn afterwards are the same. After the end-of-epoch save, the uninterrupted run
draws the next epoch's ``DataLoader`` base seed (when the iterator is made) and the
shuffling sampler's seed (at its first batch) from torch's global generator, then dropout
and augmentation. The resumed run draws for model initialisation first; and Lightning
makes its first train iterator early, in ``strategy.setup`` (``configure_optimizers`` asks
for ``trainer.estimated_stepping_batches``, which sets up the train data), before any fit
hook. So the states are saved with every checkpoint and put back when Lightning restores
the callbacks' states (``load_state_dict``, before ``strategy.setup``): from there on, the
resumed run draws what the uninterrupted one drew after the save. Hooks that draw random
numbers between the two (``on_fit_start``, ``on_train_start``, ``on_train_epoch_start``)
must do it under a forked random state, as ``ModelStats`` does; Lightning's sanity check
runs under ``isolate_rng``. (Strategies that restore callbacks after setup, such as
DeepSpeed, restore the states too late for the first epoch's iterator.)
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any
from weakref import proxy

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

log = logging.getLogger(__name__)


def random_state() -> dict[str, Any]:
    """The global random states training draws from (torch CPU and CUDA, NumPy, Python).

    Only tensors and plain Python values, so ``torch.load(..., weights_only=True)`` reads
    them back.
    """
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),  # (624,) uint32 words of the Mersenne twister
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any]) -> None:
    """Puts back what :func:`random_state` returned."""
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for device, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, device)


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/<filename>.ckpt`` at the end of every training epoch.

    Every checkpoint the run writes (this one, ``best.ckpt``) carries the global random
    states of the moment it was written; a run resumed from it continues with them.

    Args:
        dirpath: the run's checkpoint folder.
        filename: the file's name without ``.ckpt``.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        super().__init__()
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.last_model_path = ""  # the file once it holds this run's state; NonFiniteGuard names it
        self.current_score = None  # what loggers that keep checkpoints (W&B log_model) read besides the path
        self.save_top_k = 1
        self.best_model_path = ""  # it ranks nothing: best.ckpt is ModelCheckpoint's
        self._restored = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state, said (Lightning logs a guess)
        self.last_model_path = str(self.path)
        for logger in trainer.loggers:  # e.g. logger.wandb.log_model=true keeps it as an artifact
            logger.after_save_checkpoint(proxy(self))

    def state_dict(self) -> dict[str, Any]:
        return {"random_state": random_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "random_state" in state_dict:
            set_random_state(state_dict["random_state"])
            self._restored = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is None:
            return
        if not self._restored:
            log.warning("%s holds no random state; the resumed run draws other random numbers", trainer.ckpt_path)
        if Path(trainer.ckpt_path).resolve() == self.path.resolve():
            self.last_model_path = str(self.path)
