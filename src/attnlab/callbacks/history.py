"""A run's history on disk, whatever its loggers: JSON lines in ``<run>/history/``, written as the run goes.

The learning curves of a run otherwise live only in its loggers (W&B keeps them in binary
``.wandb`` files), so a report, a notebook or a user on a cluster without W&B could not
plot them. :class:`History` writes three files, each line one JSON object (non-finite
values as ``null``):

- ``epochs.jsonl``: one line per training epoch, at its end: ``epoch``, ``step``
  (optimizer steps so far), ``time`` (seconds since training started) and the epoch's
  ``train/*`` and ``val/*`` values (the names of ``metrics.json``).
- ``logged.jsonl``: every record Lightning sends to its loggers, as sent: ``step`` and the
  values, e.g. ``train/loss_step`` and ``train/lr`` every ``trainer.log_every_n_steps``
  steps (sparse), throughput, ``val/*`` at each validation, ``test/*`` after testing. It
  holds exactly what W&B receives (tested against the ``.wandb`` file).
- ``hparams.json``: the hyperparameters logged during the run, e.g. ``model/params`` and
  ``model/attention_peak_bytes`` from :class:`~attnlab.callbacks.ModelStats`.

Each line is appended and the file closed at once, so a sweep that is still running can
be looked at (``attnlab-report``). A resumed run drops the records past its checkpoint,
so a run resumed in its own folder keeps one history. Only global rank zero writes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from attnlab.runs import EPOCHS, HPARAMS, LOGGED, read_jsonl


def scalar_metrics(metrics: Mapping[str, Any], prefixes: tuple[str, ...]) -> dict[str, float]:
    """Plain floats for the epoch-level metrics under ``prefixes``.

    Lightning names a value logged both per step and per epoch ``<key>_step`` and
    ``<key>_epoch``; the epoch value is kept under ``<key>``.
    """
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not key.startswith(prefixes) or key.endswith("_step") or key == "train/lr":
            continue
        out[key.removesuffix("_epoch")] = float(value)
    return out


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: tensors and NumPy numbers as floats or ints, non-finite floats as None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def append(path: Path, record: Mapping[str, Any]) -> None:
    """Appends one JSON line and closes the file, so readers see it at once."""
    with path.open("a") as f:
        f.write(json.dumps({k: _plain(v) for k, v in record.items()}, allow_nan=False) + "\n")


def _keep_before(path: Path, epoch: int, step: int) -> None:
    """Drops the records of ``path`` from ``epoch`` (or, within it, from ``step``) on.

    A record without an ``epoch`` (Lightning logs validation throughput so) belongs to the
    epoch of the record before it.
    """
    kept, current = [], 0
    for record in read_jsonl(path):
        own = "epoch" in record
        current = record.get("epoch", current)
        if current < epoch or (current == epoch and own and record.get("step", 0) < step):
            kept.append(record)
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))


class _Tap(Logger):
    """A logger that writes what Lightning logs into the history folder (see :class:`History`)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    @property
    def name(self) -> str:
        return "history"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.folder)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        append(self.folder / LOGGED, {"step": step, **metrics})

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        path = self.folder / HPARAMS
        merged = json.loads(path.read_text()) if path.is_file() else {}
        merged.update({k: _plain(v) for k, v in dict(params).items()})
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(merged, indent=2, default=str) + "\n")
        tmp.replace(path)


class History(pl.Callback):
    """Writes the run's metrics into ``<dirpath>/`` as they are logged (see the module's docstring).

    It adds a small logger to the trainer's loggers when training or testing starts, so
    it receives exactly what the configured loggers receive, and it works with none.

    Args:
        dirpath: the history folder (the run folder's ``history/``).
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.tap = _Tap(self.dirpath)
        self.started = time.monotonic()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        if self.tap not in trainer.loggers:
            trainer.loggers = [*trainer.loggers, self.tap]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A fresh run starts empty files; a resumed one keeps the records before its checkpoint."""
        self.started = time.monotonic()
        if not trainer.is_global_zero:
            return
        for name in (EPOCHS, LOGGED):
            _keep_before(self.dirpath / name, trainer.current_epoch, trainer.global_step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        values = scalar_metrics(trainer.callback_metrics, ("train/", "val/"))
        record = {"epoch": trainer.current_epoch, "step": trainer.global_step, "time": self.elapsed(), **values}
        append(self.dirpath / EPOCHS, record)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.started, 3)
