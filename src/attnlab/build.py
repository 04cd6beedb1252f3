"""Building a run's objects from a composed config.

Every object comes from a ``_target_`` with plain keyword arguments. The datamodule is
built and set up first, because the model's data-derived values (``${from_data:...}``)
come from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelSummary, ProgressBar

from attnlab.errors import ConfigError
from attnlab.module import AttnlabModule

COMPONENTS = (
    "data",
    "frontend",
    "backbone",
    "head",
    "optimizer",
    "scheduler",
    "trainer",
    "callbacks",
    "logger",
    "paths",
    "hparams_search",
)
"""Top-level config nodes that are built into objects (or, for ``paths`` and
``hparams_search``, interpolated: the latter into ``hydra.sweeper``)."""


@dataclass(frozen=True)
class RunSettings:
    """The top-level scalars of a run's config; any other top-level key is an error.

    Attributes:
        seed: passed to ``seed_everything`` (None: not seeded).
        compile: wrap the model's forward in ``torch.compile``.
        ckpt_path: resume training from this checkpoint.
        test: evaluate the best checkpoint on the test split after training.
        optimized_metric: the metric the run returns (for sweepers) and ranks by.
        task_name: ``train`` or ``eval``; the W&B job type.
        tags: W&B tags.
        attention_maps: build ``callbacks.attention_maps`` (off: not built at all).
    """

    seed: int | None = None
    compile: bool = False
    ckpt_path: str | None = None
    test: bool = True
    optimized_metric: str = "val/acc"
    task_name: str = "train"
    tags: list[str] = field(default_factory=list)
    attention_maps: bool = False


def run_settings(cfg: DictConfig) -> RunSettings:
    """The :class:`RunSettings` of ``cfg``, failing on top-level keys nothing reads."""
    names = {f.name for f in fields(RunSettings)}
    unknown = sorted(set(cfg.keys()) - names - set(COMPONENTS))
    if unknown:
        raise ConfigError(f"unknown top-level config keys {unknown}; known: {sorted(names | set(COMPONENTS))}")
    values = {k: cfg[k] for k in names if k in cfg}
    if "tags" in values:
        values["tags"] = list(values["tags"] or [])
    return RunSettings(**values)


def build_datamodule(cfg: DictConfig, stage: str = "fit") -> tuple[pl.LightningDataModule, dict[str, Any]]:
    """The datamodule, prepared and set up, and the values it gives the model."""
    if cfg.get("data") is None:
        raise ConfigError("no dataset chosen; pass data=<name> (see `attnlab-plugins`)")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup(stage)
    return datamodule, dict(datamodule.data_info())


def build_model(cfg: DictConfig, compile: bool = False) -> AttnlabModule:
    """Front-end, backbone and head from ``cfg`` (inside a ``data_info`` scope)."""
    if cfg.get("frontend") is None:
        raise ConfigError("no front-end configured; choose a modality with modality=<name>")
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") is not None else None
    return AttnlabModule(
        frontend=instantiate(cfg.frontend),
        backbone=instantiate(cfg.backbone),
        head=instantiate(cfg.head),
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        compile=compile,
    )


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The configured callbacks, minus a progress bar or model summary the trainer turns off.

    Lightning refuses ``enable_progress_bar=false`` next to a progress-bar callback; here
    ``trainer.enable_progress_bar=false`` simply means no bar. ``callbacks.attention_maps``
    is built only with ``attention_maps=true``, so the normal path keeps its fused attention.
    """
    node = cfg.get("callbacks")
    maps = node.get("attention_maps") if node is not None else None
    if cfg.get("attention_maps", False):
        if maps is None or "_target_" not in maps:
            raise ConfigError("attention_maps=true needs callbacks.attention_maps; keep explain=attention_maps")
    elif maps is not None:
        node = {k: v for k, v in node.items() if k != "attention_maps"}
    callbacks = build_named(node)
    off: list[type] = []
    if cfg.trainer.get("enable_progress_bar") is False:
        off.append(ProgressBar)
    if cfg.trainer.get("enable_model_summary") is False:
        off.append(ModelSummary)
    return [c for c in callbacks if not isinstance(c, tuple(off))]


def build_named(node: DictConfig | None) -> list[Any]:
    """Objects from a mapping of named ``_target_`` configs (callbacks, loggers); None entries,
    and factories that return None (a recipe turned off, e.g. ``callbacks.ema.decay=null``), skipped."""
    if node is None:
        return []
    built = (instantiate(value) for value in node.values() if value is not None)
    return [obj for obj in built if obj is not None]
