"""Console scripts: ``attnlab`` (train), ``attnlab-eval``, ``attnlab-plugins``.

User errors end in one line on stderr and a non-zero exit, with no traceback; bugs keep
their traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from attnlab import config
from attnlab.errors import AttnlabError, find_user_error

log = logging.getLogger("attnlab")

EXIT_USER_ERROR = 2


def _fail(message: str) -> None:
    print(f"attnlab: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def _reporting_user_errors(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    def run(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
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
    try:
        config_path = config.config_dir()
        config.check_choices(sys.argv[1:])
    except AttnlabError as exc:
        _fail(str(exc))
    config.register_search_path()
    config.register_resolvers()
    app = hydra.main(config_path=str(config_path), config_name=config_name, version_base="1.3")(
        _reporting_user_errors(task)
    )
    app()


def train_main() -> None:
    """``attnlab``: the Hydra training app."""
    _hydra_app(_train_task, "train")


def eval_main() -> None:
    """``attnlab-eval ckpt_path=...``: test a checkpoint."""
    _hydra_app(_eval_task, "eval")


def plugins_main() -> None:
    """``attnlab-plugins [list | new NAME [--dir PATH] | check [NAME ...]]`` (:mod:`attnlab.plugin_cli`)."""
    from attnlab.plugin_cli import main

    raise SystemExit(main(sys.argv[1:]))
