"""Attention maps of a fixed batch of validation examples, as PNG files and logged images.

Turned on with ``attention_maps=true`` (settings: ``conf/explain/attention_maps.yaml``).
At the end of every ``every_n_epochs``-th training epoch, and after testing, the first
``examples`` validation examples go once through the model's explicit attention path,
in eval mode without gradients. The RNG state and each module's train/eval mode are
restored afterwards, so training continues exactly as it would have without maps.

Per example ``i`` it writes into ``<dirpath>/epoch_<NNN>/`` or ``<dirpath>/test/``:
``example<i>_layer<l>_mean.png`` (each layer, mean over heads),
``example<i>_layer<L-1>_head<h>.png`` (each head of the last layer, up to ``max_heads``),
``example<i>_rollout.png`` (attention rollout) and, when the modality's view draws one,
``example<i>_view.png``, and ``captions.json``: per example its true class and the model's
prediction, by class name, where each example has one label. The same images go to every
W&B logger (``attention/<name>``, ``attention/test/<name>``, captioned) and TensorBoard logger.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import matplotlib.image
import numpy as np
import pytorch_lightning as pl
import torch
from annotated_types import Ge
from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import move_data_to_device
from torch import Tensor

from attnlab.callbacks.confusion import class_names
from attnlab.errors import ConfigError
from attnlab.explain import AttentionView, ExampleAttention, example_attention
from attnlab.types import Batch, Encoded
from attnlab.validate import WritableFolder

log = logging.getLogger(__name__)

MAX_TICKS = 64
"""Token names shown on a heatmap's axes at most (every k-th name beyond that)."""


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restores the torch (CPU and CUDA), NumPy and Python RNG states on exit."""
    py, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def first_examples(batch: Batch, n: int) -> Batch:
    """The first ``n`` examples of a collated batch (every per-example entry sliced)."""
    size = len(batch["target"])
    out: Batch = {}
    for key, value in batch.items():
        per_example = isinstance(value, (Tensor, list, tuple)) and len(value) == size
        out[key] = value[:n] if per_example else value
    return out


def heatmap(matrix: Tensor, labels: list[str] | None, title: str) -> Figure:
    """A query × key heatmap of ``matrix`` ``(N, N)``, token names on both axes when given."""
    n = matrix.shape[0]
    side = min(max(4.0, 0.16 * n + 2.0), 16.0) if labels is not None else 4.5
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix.numpy(), cmap="viridis", vmin=0.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if labels is not None:
        step = math.ceil(n / MAX_TICKS)
        ticks = list(range(0, n, step))
        size = 8 if n <= 24 else 6
        ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=90, fontsize=size)
        ax.set_yticks(ticks, [labels[t] for t in ticks], fontsize=size)
    return fig


def captions(batch: Batch, logits: Tensor, names: list[str]) -> dict[str, str]:
    """``example<i>`` -> a caption: its true class and the prediction where each example has one
    label (targets ``(B,)``, logits ``(B, C)``), else the example's number alone."""
    target = batch["target"]
    single = isinstance(target, Tensor) and target.ndim == 1 and logits.ndim == 2
    out = {}
    for i in range(logits.shape[0]):
        text = f"example {i}"
        if single:
            text += f": true {names[int(target[i])]}, predicted {names[int(logits[i].argmax())]}"
        out[f"example{i}"] = text
    return out


class AttentionMaps(pl.Callback):
    """Logs attention heatmaps, rollout and the modality's view for fixed validation examples.

    Args:
        dirpath: folder for the PNG files (the run folder's ``attention/``).
        every_n_epochs: draw at the end of every n-th training epoch.
        examples: how many validation examples (the first ones of the validation data).
        max_heads: heads of the last layer drawn one by one, at most.
        on_test: also draw after testing, into ``test/``.
        view: the modality's :class:`~attnlab.explain.AttentionView`; None draws the
            generic heatmaps only.
    """

    def __init__(
        self,
        dirpath: Annotated[str, WritableFolder()],
        every_n_epochs: Annotated[int, Ge(1)] = 1,
        examples: Annotated[int, Ge(1)] = 4,
        max_heads: Annotated[int, Ge(1)] = 8,
        on_test: bool = True,
        view: AttentionView | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("every_n_epochs", every_n_epochs), ("examples", examples), ("max_heads", max_heads)):
            if value < 1:
                raise ConfigError(f"callbacks.attention_maps.{name}={value} must be >= 1")
        self.dirpath = Path(dirpath)
        self.every_n_epochs, self.examples, self.max_heads = every_n_epochs, examples, max_heads
        self.on_test = on_test
        self.view = view
        self.batch: Batch | None = None
        self.inactive = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.draw(trainer, pl_module, f"epoch_{trainer.current_epoch:03d}")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.on_test:
            self.draw(trainer, pl_module, "test")

    def draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> list[Path]:
        """Draws the maps into ``<dirpath>/<stage>/`` and logs them; returns the files written."""
        if self.inactive or not trainer.is_global_zero:
            return []
        batch = self.fixed_batch(trainer, pl_module)
        if batch is None:
            return []
        logits, encoded = self.attention(pl_module, batch)
        if not encoded.attention:
            log.warning("attention_maps: this backbone returns no attention (depth 0 or recurrent); no maps drawn")
            self.inactive = True
            return []
        examples = example_attention(encoded.attention, encoded.pad_mask, has_cls=encoded.cls is not None)
        folder = self.dirpath / stage
        folder.mkdir(parents=True, exist_ok=True)
        images: dict[str, list[Path]] = {}
        with torch.no_grad():
            for i, example in enumerate(examples):
                for name, fig in self.figures(batch, i, example):
                    path = folder / f"example{i}_{name}.png"
                    fig.savefig(path, dpi=100)
                    images.setdefault(name, []).append(path)
        known = trainer.datamodule.class_names if trainer.datamodule is not None else None  # attnlab.data.DataModule
        names = captions(batch, logits.cpu(), class_names(known, logits.shape[-1]))
        (folder / "captions.json").write_text(json.dumps(names, indent=2) + "\n")
        self.publish(trainer, "attention/test" if stage == "test" else "attention", images, names)
        return [p for paths in images.values() for p in paths]

    def fixed_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Batch | None:
        """The first ``examples`` validation examples (taken once), on the module's device."""
        if self.batch is None:
            with preserved_rng():  # a DataLoader iterator draws its base seed from the global RNG
                loader: Any = (
                    trainer.datamodule.val_dataloader() if trainer.datamodule is not None else trainer.val_dataloaders
                )
                if isinstance(loader, (list, tuple)):
                    loader = loader[0] if loader else None
                first = next(iter(loader), None) if loader is not None else None
            if first is None:
                log.warning("attention_maps: there is no validation data to draw maps of")
                self.inactive = True
                return None
            self.batch = first_examples(first, self.examples)
        return move_data_to_device(self.batch, pl_module.device)

    @staticmethod
    def attention(pl_module: pl.LightningModule, batch: Batch) -> tuple[Tensor, Encoded]:
        """The logits and the encoding with attention maps, in eval mode, without gradients or RNG draws."""
        modes = [(m, m.training) for m in pl_module.modules()]
        pl_module.eval()
        try:
            with torch.no_grad(), preserved_rng():
                logits, encoded = pl_module(batch, return_attention=True)
        finally:
            for module, mode in modes:
                module.training = mode
        return logits, encoded

    def figures(self, batch: Batch, index: int, example: ExampleAttention) -> Iterator[tuple[str, Figure]]:
        """``(name, figure)`` for each picture of one example."""
        names = self.view.labels(batch, index) if self.view is not None else None
        if names is not None and example.has_cls:
            names = ["CLS", *names]
        if names is not None and len(names) != example.rollout.shape[0]:
            raise ValueError(
                f"the attention view named {len(names)} tokens, the example has {example.rollout.shape[0]}"
            )
        cls = " (token 0: CLS)" if names is None and example.has_cls else ""
        last = example.weights.shape[0] - 1
        for layer, weights in enumerate(example.weights):
            title = f"example {index}, layer {layer}, mean of heads{cls}"
            yield f"layer{layer}_mean", heatmap(weights.mean(0), names, title)
        for head in range(min(self.max_heads, example.weights.shape[1])):
            title = f"example {index}, layer {last}, head {head}{cls}"
            yield f"layer{last}_head{head}", heatmap(example.weights[last, head], names, title)
        yield "rollout", heatmap(example.rollout, names, f"example {index}, attention rollout{cls}")
        overlay = self.view.overlay(batch, index, example) if self.view is not None else None
        if overlay is not None:
            yield "view", overlay

    @staticmethod
    def publish(trainer: pl.Trainer, prefix: str, images: dict[str, list[Path]], captions: dict[str, str]) -> None:
        """Sends the images to the W&B (captioned) and TensorBoard loggers (CSV loggers get nothing)."""
        step = trainer.global_step
        for logger in trainer.loggers:
            for name, paths in images.items():
                if isinstance(logger, WandbLogger):
                    caption = [captions[p.stem.split("_", 1)[0]] for p in paths]
                    logger.log_image(key=f"{prefix}/{name}", images=[str(p) for p in paths], step=step, caption=caption)
                elif isinstance(logger, TensorBoardLogger):
                    for path in paths:
                        rgb = matplotlib.image.imread(path)[..., :3]  # (H, W, 3) in [0, 1]
                        tag = f"{prefix}/{name}/{path.stem.split('_', 1)[0]}"
                        logger.experiment.add_image(tag, rgb, step, dataformats="HWC")
