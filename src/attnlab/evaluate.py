"""Evaluate a checkpoint on the test split, rebuilding model and data from the checkpoint.

The training run's resolved config and data-derived values travel inside every
checkpoint (``EmbedRunConfig``), so a checkpoint is enough. ``data.*`` values given to
``attnlab-eval`` (e.g. ``+data.source.root=/elsewhere``) replace the stored ones. With
``attention_maps=true`` the run's attention maps are drawn for the test.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab import threads, tracking, validate
from attnlab.build import build_callbacks, build_datamodule, build_model, build_named
from attnlab.checkpoints import read_run
from attnlab.config import data_info
from attnlab.console import print_results
from attnlab.errors import ConfigError
from attnlab.train import scalar_metrics, write_metrics

log = logging.getLogger(__name__)


def attention_maps(train_cfg: DictConfig, run_dir: Path) -> DictConfig:
    """The training run's attention-map settings (its view included), drawing after testing into
    ``run_dir/attention``."""
    node = (train_cfg.get("callbacks") or {}).get("attention_maps")
    if node is None:
        raise ConfigError("this checkpoint's run has no callbacks.attention_maps settings to draw maps with")
    return OmegaConf.merge(node, {"dirpath": str(run_dir / "attention"), "on_test": True})


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Tests ``cfg.ckpt_path`` and writes ``metrics.json`` into this run's folder."""
    if cfg.ckpt_path is None:
        raise ConfigError("attnlab-eval needs a checkpoint to test: ckpt_path=<run>/checkpoints/best.ckpt")
    ckpt_path = Path(cfg.ckpt_path)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_cfg, info = read_run(ckpt_path)
    train_cfg.data = OmegaConf.merge(train_cfg.data, cfg.get("data") or {})
    validate.check_target("data", train_cfg.data)  # the stored settings with this command's data.* on top
    threads.configure()  # this job's share of the cores, once its settings are known to be good

    datamodule, _ = build_datamodule(train_cfg, "test")
    with data_info(info):
        model = build_model(train_cfg)
    loggers = build_named(cfg.get("logger"))
    if cfg.get("attention_maps", False):
        with open_dict(cfg):
            cfg.callbacks.attention_maps = attention_maps(train_cfg, run_dir)
    with data_info(info):  # the callbacks read ${from_data:class_names}
        callbacks = build_callbacks(cfg)
    with validate.rejections("trainer", cfg.trainer._target_):
        trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    try:
        for logger in loggers:
            logger.log_hyperparams(tracking.redact({"ckpt_path": str(ckpt_path), **OmegaConf.to_container(train_cfg)}))
        results = trainer.test(model, datamodule=datamodule, ckpt_path=str(ckpt_path), verbose=False)
    finally:
        tracking.finish(loggers)
    metrics = scalar_metrics(results[0] if results else {}, ("test/",))
    write_metrics(run_dir / "metrics.json", metrics)
    print_results(f"test metrics of {ckpt_path}", metrics, run_dir)
    return metrics
