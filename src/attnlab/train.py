"""One training run: compose → instantiate → fit → test → write metrics → return the metric."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning_fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from attnlab import jobs, objective, tracking
from attnlab.build import build_callbacks, build_datamodule, build_model, build_named, run_settings
from attnlab.callbacks import EmbedRunConfig, TrackObjective
from attnlab.checkpoints import check_resumable, read_run
from attnlab.config import data_info
from attnlab.console import print_config_tree, print_results
from attnlab.distributed import end_process_group

log = logging.getLogger(__name__)


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


def write_metrics(path: Path, metrics: Mapping[str, float]) -> None:
    """Writes ``metrics.json`` atomically (a crash never leaves half a file)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(metrics.items())), indent=2) + "\n")
    tmp.replace(path)


def resume_hint(ckpt: Path) -> str:
    try:
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("ckpt_path=")]
    except ValueError:
        overrides = []
    return " ".join(["attnlab", *overrides, f"ckpt_path={ckpt}"])


def _fit(trainer: pl.Trainer, model: pl.LightningModule, datamodule: pl.LightningDataModule, ckpt: str | None) -> None:
    """``trainer.fit``, turning Lightning's exit on Ctrl-C into a message on how to resume."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
    except SystemExit:
        if not trainer.interrupted:
            raise
        last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        if last.is_file():
            log.error("interrupted; resume with: %s", resume_hint(last))
        else:
            log.error("interrupted before any checkpoint was written")
        raise SystemExit(130) from None


def train(cfg: DictConfig) -> float | None:
    """Runs one job and returns the best value of ``cfg.optimized_metric`` in its direction (for sweepers)."""
    settings = run_settings(cfg)
    goal = objective.of_config(cfg)  # an unknown metric fails here, before any data or training
    jobs.annotate(objective=goal.as_record())
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Read the checkpoint first: a wrong path fails before any data is prepared.
    resume_from = read_run(Path(settings.ckpt_path))[0] if settings.ckpt_path is not None else None
    if settings.seed is not None:
        pl.seed_everything(settings.seed, workers=True)

    log.info("run folder: %s", run_dir)
    datamodule, info = build_datamodule(cfg, "fit")
    log.info("data: %s", ", ".join(f"{k}={v}" for k, v in info.items()))
    with data_info(info):
        resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        if rank_zero_only.rank == 0:  # DDP ranks > 0 re-run this job in the same folder
            print_config_tree(resolved)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
        if resume_from is not None:
            check_resumable(Path(settings.ckpt_path), resume_from, resolved)
        model = build_model(cfg, compile=settings.compile)
        tracker = TrackObjective(goal)
        callbacks = [*build_callbacks(cfg), EmbedRunConfig(resolved, info), tracker]
        loggers = build_named(cfg.get("logger"))
        trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    failed = True
    try:
        for logger in loggers:
            logger.log_hyperparams(tracking.redact(resolved))
        _fit(trainer, model, datamodule, settings.ckpt_path)
        metrics = scalar_metrics(trainer.callback_metrics, ("train/", "val/"))
        if tracker.best is not None:
            metrics[f"{goal.metric}_best"] = tracker.best
        best = trainer.checkpoint_callback
        if settings.test:
            best_path = getattr(best, "best_model_path", "") if best is not None else ""
            results = trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None, verbose=False)
            metrics.update(scalar_metrics(results[0] if results else {}, ("test/",)))
        if trainer.is_global_zero:
            write_metrics(run_dir / "metrics.json", metrics)
            log.info("metrics: %s", json.dumps(metrics))
        failed = False
    finally:
        tracking.finish(loggers, failed=failed)
        end_process_group()

    if trainer.is_global_zero:
        print_results("final metrics", metrics, run_dir)
    return tracker.best
