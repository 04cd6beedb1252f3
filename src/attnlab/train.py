"""One training run: compose → instantiate → fit → test → write metrics → return the metric."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from lightning_fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from attnlab import baselines, jobs, objective, resume, tracking, validate
from attnlab.build import build_callbacks, build_datamodule, build_model, build_named, run_settings
from attnlab.callbacks import EmbedRunConfig, LastCheckpoint, TrackObjective
from attnlab.callbacks.history import scalar_metrics
from attnlab.checkpoints import check_resumable, read_run, trainer_plugins
from attnlab.config import data_info
from attnlab.console import print_config_tree, print_results
from attnlab.distributed import end_process_group

log = logging.getLogger(__name__)


def write_metrics(path: Path, metrics: Mapping[str, float]) -> None:
    """Writes ``metrics.json`` atomically (a crash never leaves half a file)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(metrics.items())), indent=2) + "\n")
    tmp.replace(path)


def _interruptible(trainer: pl.Trainer, run_dir: Path, action: Callable[[], Any]) -> Any:
    """``action()`` (``trainer.fit``/``test``), saying how to resume when the run is stopped.

    Lightning turns Ctrl-C into ``sys.exit(1)`` and SIGTERM into a ``SIGTERMException`` at
    the next batch boundary; they exit with 130 and 143. Another exit raised inside the run
    (submitit's on pre-emption, after it requeued the job) keeps its own status.
    """
    try:
        return action()
    except SystemExit as stop:
        if not trainer.interrupted:
            raise
        if isinstance(stop, SIGTERMException):
            what, code = "stopped by SIGTERM", resume.EXIT_SIGTERM
        elif isinstance(stop.__context__, KeyboardInterrupt):
            what, code = "interrupted", resume.EXIT_SIGINT
        else:
            what, code = f"stopped (exit status {stop.code})", stop.code
        if (run_dir / resume.LAST).is_file():
            log.error("%s; resume from the end of its latest epoch with: %s", what, resume.resume_command(run_dir))
        else:
            log.error("%s before its first epoch ended; nothing to resume", what)
        raise SystemExit(code) from None


def _fit(
    trainer: pl.Trainer,
    model: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    ckpt: Path | None,
    same_run: bool,
) -> None:
    if ckpt is not None:
        log.info("resuming from %s", ckpt)
    with warnings.catch_warnings():
        if same_run:  # continuing in its own folder, whose checkpoints Lightning would warn about
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt is not None else None)


def train(cfg: DictConfig) -> float | None:
    """Runs one job and returns the best value of ``cfg.optimized_metric`` in its direction (for sweepers)."""
    settings = run_settings(cfg)
    try:
        goal: objective.Objective | None = objective.of_config(cfg)  # an unknown metric fails here, before any data
    except objective.TaskUnknown:
        goal = None  # the head follows data that says its task only once read: checked after set-up
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Read the checkpoint first: a wrong path fails before any data is prepared.
    ckpt, same_run = resume.checkpoint_to_resume(settings.ckpt_path, run_dir)
    resume_from = read_run(ckpt)[0] if ckpt is not None else None
    if settings.seed is not None:
        pl.seed_everything(settings.seed, workers=True)

    log.info("run folder: %s", run_dir)
    datamodule, info = build_datamodule(cfg, "fit")
    if goal is None:
        goal = objective.of_config(cfg)
    jobs.annotate(run_dir, objective=goal.as_record())
    log.info("data: %s", ", ".join(f"{k}={v}" for k, v in info.items()))
    with data_info(info):
        validate.check_config(cfg)  # again, now that ${from_data:...} values resolve
        resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        if resume_from is not None:
            check_resumable(ckpt, resume_from, resolved, same_run=same_run)
        if rank_zero_only.rank == 0:  # DDP ranks > 0 re-run this job in the same folder
            print_config_tree(resolved)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(resolved))
        model = build_model(cfg, compile=settings.compile)
        tracker = TrackObjective(goal)
        # last.ckpt is written after best.ckpt and the tracker in the same epoch, so it holds their updated state.
        callbacks = sorted(
            [*build_callbacks(cfg), EmbedRunConfig(resolved, info), tracker],
            key=lambda c: isinstance(c, LastCheckpoint),
        )
        if not same_run and rank_zero_only.rank == 0:  # a new run in a used folder is a new W&B run
            (run_dir / tracking.RUN_ID_FILE).unlink(missing_ok=True)
        loggers = build_named(cfg.get("logger"))
        plugins = trainer_plugins(instantiate(cfg.trainer.get("plugins")))
        with validate.rejections("trainer", cfg.trainer._target_):
            trainer: pl.Trainer = instantiate(
                cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins
            )

    failed = True
    try:
        tracking.summarise(loggers, goal.metric, goal.mode)  # W&B keeps the best value, not the last
        for logger in loggers:
            logger.log_hyperparams(tracking.redact(resolved))
        _interruptible(trainer, run_dir, lambda: _fit(trainer, model, datamodule, ckpt, same_run))
        metrics = scalar_metrics(trainer.callback_metrics, ("train/", "val/"))
        if tracker.best is not None:
            metrics[f"{goal.metric}_best"] = tracker.best
        best = trainer.checkpoint_callback
        if settings.test:
            best_path = getattr(best, "best_model_path", "") if best is not None else ""
            results = _interruptible(
                trainer,
                run_dir,
                lambda: trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None, verbose=False),
            )
            metrics.update(scalar_metrics(results[0] if results else {}, ("test/",)))
            if trainer.is_global_zero:  # a majority guess and a linear model on the same split (attnlab.baselines)
                metrics.update(baselines.report(datamodule, trainer.loggers, step=trainer.global_step))
        if trainer.is_global_zero:
            write_metrics(run_dir / "metrics.json", metrics)
            log.info("metrics: %s", json.dumps(metrics))
        failed = False
    finally:
        tracking.finish(loggers, failed=failed)
        end_process_group()

    if trainer.is_global_zero:
        print_results("final metrics", metrics, run_dir, head=cfg.head.get("_target_"))
    return tracker.best
