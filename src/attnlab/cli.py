"""Console scripts: ``attnlab`` (train), ``attnlab-eval``, ``attnlab-report``, ``attnlab-plugins``.

User errors end in one line on stderr and a non-zero exit, with no traceback; bugs keep
their traceback.

Commands that do not train start fast: this module imports only what the command in hand
needs, and Lightning, W&B and Optuna load inside the job (``attnlab --help``, a config
error caught before composition and ``attnlab-plugins`` never import them).
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnlab.errors import AttnlabError, ConfigError, fail, find_user_error

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("attnlab")


def _fail(message: str) -> None:
    fail(message)  # attnlab: error: <message>, exit 2


def _as_job(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """``task`` run as one recorded job (see :mod:`attnlab.jobs`), user errors as one line.

    Runs in Hydra's launcher, which may be a fresh worker process (joblib), so it
    registers attnlab's resolvers itself (the task sets the job's threads, :mod:`attnlab.threads`, once
    its settings are checked, so that a bad value stays one line);
    lets the ranks that Lightning's DDP starts re-run this job (see
    :mod:`attnlab.distributed`); and the groups named on the command line win over a
    preset's keys (:func:`attnlab.compose.honour_job_choices`), before the job's settings
    are checked.
    """

    def run(cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        from attnlab import compose, config, distributed, jobs

        checked = _checked(task)

        def honoured(cfg: DictConfig) -> Any:
            return checked(compose.honour_job_choices(cfg))

        config.register_resolvers()
        _freeze_startup_heap()
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


def _freeze_startup_heap() -> None:
    """Once per process, before its first job: moves the objects alive now out of the collector's reach.

    By then a run has imported torch, Lightning, torchmetrics and the plugins (~500,000
    objects that live as long as the process). Every full collection would walk them all
    (~0.25 s of CPU each, one of them during a 5-epoch run), and so would the collections
    of the interpreter's shutdown (~1.2 s of CPU); frozen (:func:`gc.freeze`), they are
    skipped. Garbage cycles already dead at this point stay allocated, which costs little
    once; the job's own objects (model, data, loggers, checkpoints) are made after the
    freeze and collected as always, and a sweep's later jobs freeze nothing, so no job's
    model or data is ever kept.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
    gc.enable()  # paused while the process started (_collector_paused)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The garbage collector off from the command's start until its first job (or its end).

    Importing torch, Lightning, torchmetrics and the plugins allocates ~500,000 long-lived
    objects, and the collector walks all of them several times on the way (~0.8 s of CPU
    for a training run); the startup heap is frozen before the first job
    (:func:`_freeze_startup_heap`) anyway. The cost: the startup's garbage cycles (~30,000
    small objects, ~10x what the collections would leave) are never freed.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _checked(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    from attnlab import preflight

    return preflight.checked(task)  # a sweep's job checks its settings before it starts


def _train_task(cfg: DictConfig) -> float | None:
    from attnlab import threads
    from attnlab.train import train

    threads.configure()  # this job's share of the cores (its settings were checked before the job)
    return train(cfg)


def _eval_task(cfg: DictConfig) -> dict[str, float]:
    from attnlab.evaluate import evaluate

    return evaluate(cfg)


def _hydra_app(task: Callable[[DictConfig], Any], config_name: str) -> None:
    import hydra
    from hydra._internal.utils import get_args_parser  # the parser hydra.main uses

    from attnlab import config, distributed, hydra_errors, plugins, resume, usage

    sys.argv[1:] = distributed.rank_argv(sys.argv[1:])
    try:
        config_path = config.config_dir()
        if usage.wants_help(sys.argv[1:]):  # attnlab's help, not Hydra's: no config to compose
            print(usage.text([config_path, *plugins.config_dirs()]))
            return
        config.check_choices(get_args_parser().parse_args(sys.argv[1:]).overrides)  # without -m, --cfg, ...
    except AttnlabError as exc:
        _fail(str(exc))
    config.register_search_path()
    config.register_resolvers()
    if config_name == "train":  # `ckpt_path=last`: continue the run in its own folder
        try:
            sys.argv[1:] = resume.locate_run(sys.argv[1:])
        except AttnlabError as exc:
            _fail(str(exc))
    app = hydra.main(config_path=str(config_path), config_name=config_name, version_base="1.3")(_as_job(task))
    try:
        with hydra_errors.reported(config_name, sys.argv[1:]):  # Hydra's composition errors, as one line
            app()
    except AttnlabError as exc:
        _fail(str(exc))


def train_main() -> None:
    """``attnlab``: the Hydra training app."""
    with _collector_paused():
        _hydra_app(_train_task, "train")


def eval_main() -> None:
    """``attnlab-eval ckpt_path=...``: test a checkpoint."""
    with _collector_paused():
        _hydra_app(_eval_task, "eval")


def _latest_sweep(root: Path) -> Path:
    sweeps = sorted(root.glob("*/*/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    if not sweeps:
        raise ConfigError(f"no sweeps under {root}; pass a sweep folder: attnlab-report outputs/multirun/<date>/<time>")
    return sweeps[-1].parent


def report_main(argv: list[str] | None = None) -> None:
    """``attnlab-report [FOLDER]``: a sweep's (or one run's) jobs ranked, plus report.csv/.md/.png/.html."""
    import argparse

    from attnlab.console import print_report
    from attnlab.report import build_report, write

    parser = argparse.ArgumentParser(prog="attnlab-report", description=report_main.__doc__)
    parser.add_argument(
        "sweep", nargs="?", type=Path, help="a sweep or run folder (default: the newest in outputs/multirun)"
    )
    parser.add_argument("--metric", help="rank by this metric (default: the one the runs optimised)")
    parser.add_argument("--mode", choices=("max", "min"), help="the metric's direction (default: its own)")
    parser.add_argument("--no-files", action="store_true", help="print only; write nothing into the sweep folder")
    args = parser.parse_args(argv)
    try:
        report = build_report(args.sweep or _latest_sweep(Path("outputs/multirun")), args.metric, args.mode)
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
