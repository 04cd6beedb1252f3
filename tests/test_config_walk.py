"""Every config file composes and every `_target_` in it instantiates with the keys given.

Partials (optimizer, scheduler, attention) are called too, so a key nothing reads fails
here instead of being silently ignored.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from attnlab import config, plugins
from attnlab.build import build_callbacks, build_datamodule, build_model, build_named, run_settings
from conftest import compose_config

ROOTS = [config.CONFIG_DIR, *plugins.config_dirs()]
PRIMARY = {"train.yaml", "eval.yaml"}


def config_files() -> list[tuple[str, str]]:
    found = []
    for root in ROOTS:
        for path in sorted(root.rglob("*.yaml")):
            rel = path.relative_to(root)
            if rel.parts[0] == "hydra":  # composed into every run below
                continue
            found.append((str(root), str(rel)))
    return found


def overrides_for(rel: str) -> tuple[str, list[str]]:
    path = Path(rel)
    if str(path) in PRIMARY:
        return path.stem, ["ckpt_path=unused.ckpt"] if path.stem == "eval" else []
    group, name = path.parent.as_posix(), path.stem
    if group == "modality":
        return "train", [f"modality={name}"]
    return "train", [f"{group}={name}"]


@functools.cache
def digits_info() -> dict:
    _, info = build_datamodule(compose_config(["data=digits"]))
    return info


def targets(node) -> int:
    if isinstance(node, dict):
        return ("_target_" in node) + sum(targets(v) for v in node.values())
    if isinstance(node, list):
        return sum(targets(v) for v in node)
    return 0


@pytest.mark.parametrize(("root", "rel"), config_files(), ids=[r for _, r in config_files()])
def test_config_file_composes_and_instantiates(root, rel, tmp_path):
    name, overrides = overrides_for(rel)
    cfg = compose_config(overrides, name=name, output_dir=tmp_path)
    if name == "eval":
        instantiate(cfg.trainer, callbacks=build_callbacks(cfg), logger=build_named(cfg.logger) or False)
        return
    run_settings(cfg)  # top-level keys: each is read, or this raises
    instantiate(cfg.data)  # constructing needs no files; set-up is tested per dataset
    with config.data_info(digits_info()):
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
