"""Console scripts: ``attnlab`` (train), ``attnlab-eval``, ``attnlab-report``, ``attnlab-plugins``.

User errors end in one line on stderr and a non-zero exit, with no traceback; bugs keep
their traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from attnlab import compose, config, distributed, jobs
from attnlab.errors import AttnlabError, ConfigError, find_user_error

log = logging.getLogger("attnlab")

EXIT_USER_ERROR = 2


def _fail(message: str) -> None:
    print(f"attnlab: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def _as_job(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """``task`` run as one recorded job (see :mod:`attnlab.jobs`), user errors as one line.

    Runs in Hydra's launcher, which may be a fresh worker process (joblib), so it
    registers attnlab's resolvers itself; and it lets the ranks that Lightning's DDP
    starts re-run this job (see :mod:`attnlab.distributed`). The groups named on the
    command line win over a preset's keys (:func:`attnlab.compose.honour_job_choices`).
    """

    def honoured(cfg: DictConfig) -> Any:
        return task(compose.honour_job_choices(cfg))

    def run(cfg: DictConfig) -> Any:
        config.register_resolvers()
        hydra_cfg = HydraConfig.get()
        try:
            with distributed.ranks_join(jobs.job_dir(), jobs.job_overrides(), hydra_cfg.job.name):
                return jobs.run_job(honoured, cfg)
        except Exception as exc:
            error = find_user_error(exc)
            if error is None:
                raise
            log.debug("user error", exc_info=exc)
            _fail(str(error))

    return run


def _train_task(cfg: DictConfig) -> float | None:
    from attnlab.train import train

    return train(cfg)


def _eval_task(cfg: DictConfig) -> dict[str, float]:
    from attnlab.evaluate import evaluate

    return evaluate(cfg)


def _hydra_app(task: Callable[[DictConfig], Any], config_name: str) -> None:
    sys.argv[1:] = distributed.rank_argv(sys.argv[1:])
    try:
        config_path = config.config_dir()
        config.check_choices(sys.argv[1:])
    except AttnlabError as exc:
        _fail(str(exc))
    config.register_search_path()
    config.register_resolvers()
    app = hydra.main(config_path=str(config_path), config_name=config_name, version_base="1.3")(_as_job(task))
    app()


def train_main() -> None:
    """``attnlab``: the Hydra training app."""
    _hydra_app(_train_task, "train")


def eval_main() -> None:
    """``attnlab-eval ckpt_path=...``: test a checkpoint."""
    _hydra_app(_eval_task, "eval")


def _latest_sweep(root: Path) -> Path:
    sweeps = sorted(root.glob("*/*/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    if not sweeps:
        raise ConfigError(f"no sweeps under {root}; pass a sweep folder: attnlab-report outputs/multirun/<date>/<time>")
    return sweeps[-1].parent


def report_main(argv: list[str] | None = None) -> None:
    """``attnlab-report [SWEEP]``: a sweep's jobs as a table, plus report.csv/.md/.png in its folder."""
    import argparse

    from attnlab.console import print_report
    from attnlab.report import build_report, write

    parser = argparse.ArgumentParser(prog="attnlab-report", description=report_main.__doc__)
    parser.add_argument("sweep", nargs="?", type=Path, help="a sweep folder (default: the newest in outputs/multirun)")
    parser.add_argument("--metric", help="the main metric (default: the sweep's optimized_metric)")
    parser.add_argument("--no-files", action="store_true", help="print only; write nothing into the sweep folder")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.sweep or _latest_sweep(Path("outputs/multirun")), args.metric)
    except AttnlabError as exc:
        _fail(str(exc))
    print_report(report)
    if not args.no_files:
        for path in write(report):
            print(f"wrote {path}")


def plugins_main() -> None:
    """``attnlab-plugins [list | new NAME [--dir PATH] | check [NAME ...]]`` (:mod:`attnlab.plugin_cli`)."""
    from attnlab.plugin_cli import main

    raise SystemExit(main(sys.argv[1:]))
