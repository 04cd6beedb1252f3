"""Every config file composes and every `_target_` in it instantiates with the keys given.

Partials (optimizer, scheduler, attention) are called too, so a key nothing reads fails
here instead of being silently ignored.
"""

from __future__ import annotations

import functools
import inspect
import tempfile
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from attnlab import config, plugins, preflight
from attnlab.build import (
    TRANSFORMS,
    build_callbacks,
    build_datamodule,
    build_model,
    build_named,
    build_transforms,
    run_settings,
)
from attnlab.tasks import AUTO, head_task
from conftest import compose_config

PRIMARY = {"train.yaml", "eval.yaml"}
DEFAULT_MODALITY = "vision"
# Each file is composed under the modality it belongs to: attnlab's own under the default.
ROOTS = {str(config.CONFIG_DIR): DEFAULT_MODALITY, **{str(p.config_dir): n for n, p in plugins.available().items()}}


def config_files() -> list[tuple[str, str]]:
    found = []
    for root in ROOTS:
        for path in sorted(Path(root).rglob("*.yaml")):
            rel = path.relative_to(root)
            if rel.parts[0] == "hydra":  # composed into every run below
                continue
            found.append((root, str(rel)))
    return found


def overrides_for(root: str, rel: str) -> tuple[str, str, list[str]]:
    """The primary config, the modality and the overrides that compose ``root/rel``."""
    path = Path(rel)
    if str(path) in PRIMARY:
        return path.stem, DEFAULT_MODALITY, ["ckpt_path=unused.ckpt"] if path.stem == "eval" else []
    group, name = path.parent.as_posix(), path.stem
    modality = name if group == "modality" else ROOTS[root]
    return "train", modality, [f"modality={modality}"] + ([] if group == "modality" else [f"{group}={name}"])


@functools.cache
def data_info(modality: str) -> dict:
    """What the modality's default dataset gives the model (built once per session)."""
    run = Path(tempfile.mkdtemp(prefix="attnlab-walk-"))
    _, info = build_datamodule(compose_config([f"modality={modality}", *SMALL_DATA.get(modality, [])], output_dir=run))
    return info


SMALL_DATA = {
    "speech": ["data.source.generation.per_voice=1", "data.source.generation.variants=[m1,m3,f1]"],
    "text": ["data.source.generation.train=200", "data.source.generation.val=20", "data.source.generation.test=20"],
}


def targets(node) -> int:
    if isinstance(node, dict):
        return ("_target_" in node) + sum(targets(v) for v in node.values())
    if isinstance(node, list):
        return sum(targets(v) for v in node)
    return 0


@pytest.mark.parametrize(("root", "rel"), config_files(), ids=[r for _, r in config_files()])
def test_config_file_composes_and_instantiates(root, rel, tmp_path):
    name, modality, overrides = overrides_for(root, rel)
    cfg = compose_config(overrides, name=name, output_dir=tmp_path)
    if name == "eval":
        preflight.check_job(cfg, {}, [])
        with config.data_info(data_info(DEFAULT_MODALITY)):  # from the checkpoint in a real evaluation
            callbacks = build_callbacks(cfg)
        instantiate(cfg.trainer, callbacks=callbacks, logger=build_named(cfg.logger) or False)
        return
    run_settings(cfg)  # top-level keys: each is read, or this raises
    preflight.check_job(cfg, {}, [])  # every value fits what it configures
    # constructing needs no files (set-up is tested per dataset); transforms are built after set-up, as runs do
    instantiate(cfg.data, **{key: None for key in TRANSFORMS if key in cfg.data})
    info = data_info(modality)
    target = cfg.head._target_  # an explicit head builds with the task it fits (the data's is checked per dataset)
    with config.data_info({**info, "task": info["task"] if target == AUTO else head_task(target)}):
        build_transforms(cfg.data)  # training augmentation may read the data's values (num_classes, sample_rate)
        model = build_model(cfg)
        optimizer = model.optimizer_factory(model.parameters())
        if model.scheduler_factory is not None:
            model.scheduler_factory(optimizer, total_steps=10)
        callbacks = build_callbacks(cfg)
        loggers = build_named(cfg.get("logger"))
        if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
            kwargs = OmegaConf.to_container(cfg.trainer)
            kwargs.pop("_target_")
            inspect.signature(pl.Trainer).bind(**kwargs)  # no GPU here: check the keys only
        else:
            instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    raw = yaml.safe_load((Path(root) / rel).read_text()) or {}
    assert targets(OmegaConf.to_container(cfg)) >= targets(raw)


def test_trainer_config_lists_every_trainer_argument():
    cfg = OmegaConf.load(config.CONFIG_DIR / "trainer" / "default.yaml")
    params = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", "logger", "callbacks"}
    assert set(cfg.keys()) - {"_target_"} == params


def test_optimizer_partial_takes_parameters():
    cfg = compose_config([])
    opt = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == cfg.optimizer.lr
