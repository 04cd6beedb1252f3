"""Building a run's objects from a composed config.

Every object comes from a ``_target_`` with plain keyword arguments. The datamodule is
built and set up first, because the model's data-derived values (``${from_data:...}``)
come from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Annotated, Any

import pytorch_lightning as pl
from annotated_types import Interval
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelSummary, ProgressBar

from attnlab.config import data_info, data_value
from attnlab.data import DataModule
from attnlab.data.catalog import check_pairing
from attnlab.errors import ConfigError, find_user_error
from attnlab.module import AttnlabModule
from attnlab.tasks import resolve_head
from attnlab.validate import rejections

COMPONENTS = (
    "data",
    "augment",
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
    "attention_defaults",
)
"""Top-level config nodes that are built into objects (or, for ``paths``, ``augment``,
``hparams_search`` and ``attention_defaults``, interpolated: ``augment`` into the data's
training transforms, ``hparams_search`` into ``hydra.sweeper``, ``attention_defaults`` into
attention backbones)."""

TRANSFORMS = ("train_transform", "batch_transform")
"""The data's training transforms: built after set-up, so that they can read ``${from_data:...}``."""


@dataclass(frozen=True)
class RunSettings:
    """The top-level scalars of a run's config; any other top-level key is an error.

    :mod:`attnlab.validate` checks a composed config against these annotations.

    Attributes:
        seed: passed to ``seed_everything`` (None: not seeded); numpy's range, 0 to 2**32 - 1.
        compile: wrap the model's forward in ``torch.compile``.
        ckpt_path: resume training from this checkpoint.
        test: evaluate the best checkpoint on the test split after training.
        optimized_metric: the metric the run returns (for sweepers) and ranks by; None until
            the data is read when the head follows data that says its task only then.
        task_name: ``train`` or ``eval``; the W&B job type.
        tags: W&B tags.
        attention_maps: build ``callbacks.attention_maps`` (off: not built at all).
    """

    seed: Annotated[int, Interval(ge=0, le=2**32 - 1)] | None = None
    compile: bool = False
    ckpt_path: str | None = None
    test: bool = True
    optimized_metric: str | None = "val/acc"
    task_name: str = "train"
    tags: list[str] = field(default_factory=list)
    attention_maps: bool = False


def run_settings(cfg: DictConfig) -> RunSettings:
    """The :class:`RunSettings` of ``cfg``, failing on top-level keys nothing reads."""
    names = {f.name for f in fields(RunSettings)}
    unknown = sorted(set(cfg.keys()) - names - set(COMPONENTS))
    if unknown:
        raise ConfigError(f"unknown top-level config keys {unknown}; known: {sorted(names | set(COMPONENTS))}")
    values = {k: _setting(cfg, k) for k in names if k in cfg}
    if "tags" in values:
        values["tags"] = list(values["tags"] or [])
    return RunSettings(**values)


def _setting(cfg: DictConfig, key: str) -> Any:
    """``cfg[key]``; None for an ``optimized_metric`` known only once the data is read (head=auto
    on data that says its task when it is read: :func:`attnlab.objective.of_config` then tells)."""
    from omegaconf.errors import InterpolationResolutionError

    from attnlab.objective import TaskUnknown

    try:
        return cfg[key]
    except InterpolationResolutionError as exc:
        if key == "optimized_metric" and isinstance(find_user_error(exc), TaskUnknown):
            return None
        raise


def build_datamodule(cfg: DictConfig, stage: str = "fit") -> tuple[DataModule, dict[str, Any]]:
    """The datamodule, prepared and set up, and the values it gives the model.

    ``cfg.head`` then follows the data: ``head: auto`` is replaced by the head of the data's
    task, and an explicit head that cannot fit it fails (:func:`attnlab.tasks.resolve_head`).
    """
    if cfg.get("data") is None:
        raise ConfigError("no dataset chosen; pass data=<name> (see `attnlab-plugins`)")
    check_modality(cfg)
    datamodule = instantiate(cfg.data, **{key: None for key in TRANSFORMS if key in cfg.data})
    if not isinstance(datamodule, DataModule):
        raise ConfigError(
            f"data._target_ must be attnlab.data.DataModule (with the dataset under data.source); "
            f"got {type(datamodule).__name__}"
        )
    datamodule.prepare_data()
    datamodule.setup(stage)
    resolve_head(cfg, datamodule.spec.task, type(datamodule.source).__name__)
    info = datamodule.data_info()
    with data_info(info):
        datamodule.set_transforms(*build_transforms(cfg.data))
    return datamodule, info


def build_transforms(data: DictConfig) -> tuple[Any, Any]:
    """``data.train_transform`` and ``data.batch_transform`` (None where unset), inside a ``data_info`` scope.

    They usually follow the ``augment`` group (``${augment.example}``, ``${augment.batch}``)
    and may read the data's values (``${from_data:num_classes}``, ``${from_data:sample_rate}``).
    """
    built = []
    for key in TRANSFORMS:
        node = data.get(key)
        if node is None:
            built.append(None)
            continue
        with rejections(f"data.{key}", str(node.get("_target_"))):
            built.append(instantiate(node))
    return built[0], built[1]


def check_modality(cfg: DictConfig) -> None:
    """The front-end's plugin reads the dataset's source (``attnlab data=listops`` says: add modality=text)."""
    frontend = cfg.get("frontend", {}).get("_target_")
    source = cfg.data.get("source", {}).get("_target_") if isinstance(cfg.data, DictConfig) else None
    if frontend is None or source is None:
        return
    try:
        classes = get_class(frontend), get_class(source)
    except Exception:  # an unknown class: instantiate says which, in its own words
        return
    check_pairing(*classes)


def build_model(cfg: DictConfig, compile: bool = False) -> AttnlabModule:
    """Front-end, backbone and head from ``cfg`` (inside a ``data_info`` scope)."""
    if cfg.get("frontend") is None:
        raise ConfigError("no front-end configured; choose a modality with modality=<name>")
    resolve_head(cfg, data_value("task"))
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
    callbacks = build_named(node, "callbacks")
    off: list[type] = []
    if cfg.trainer.get("enable_progress_bar") is False:
        off.append(ProgressBar)
    if cfg.trainer.get("enable_model_summary") is False:
        off.append(ModelSummary)
    return [c for c in callbacks if not isinstance(c, tuple(off))]


def build_named(node: DictConfig | None, path: str = "logger") -> list[Any]:
    """Objects from a mapping of named ``_target_`` configs at ``path`` (callbacks, loggers).

    None entries, and factories that return None (a recipe turned off, e.g.
    ``callbacks.ema.decay=null``), are skipped. A library's own ``ValueError`` about an
    entry's settings is one line naming it.
    """
    built = []
    for name, value in (node or {}).items():
        if value is not None:
            with rejections(f"{path}.{name}", str(value.get("_target_"))):
                obj = instantiate(value)
            if obj is not None:
                built.append(obj)
    return built
