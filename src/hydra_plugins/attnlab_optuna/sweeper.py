"""hydra-optuna-sweeper with failure-tolerant trials (``hydra/sweeper=attnlab_optuna``).

hydra-optuna-sweeper 1.2 re-raises when a job fails or returns NaN, so one diverging
trial ends the whole study. Here the ask → launch → tell loop records such a trial as
``FAIL`` (with its error as a user attribute) and goes on. Everything else (search-space
syntax under ``hydra.sweeper.params``, samplers, storage, ``optimization_results.yaml``)
is hydra-optuna-sweeper's own.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import OmegaConf

from attnlab.jobs import read_status

log = logging.getLogger(__name__)


def _outcome(ret: JobReturn) -> tuple[float | None, str | None]:
    """The trial's value, or None and why the job failed."""
    if ret.status != JobStatus.COMPLETED:
        error = ret._return_value
        return None, f"{type(error).__name__}: {error}"
    try:
        value = float(ret.return_value)
    except (TypeError, ValueError):
        return None, f"the job returned {ret.return_value!r}, not a number"
    if math.isfinite(value):
        return value, None
    status = read_status(Path(ret.hydra_cfg.hydra.runtime.output_dir)) if ret.hydra_cfg is not None else None
    return None, (status or {}).get("error") or f"the job returned {value} (is optimized_metric logged?)"


class _TolerantImpl(OptunaSweeperImpl):
    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        distributions, fixed = create_params_from_overrides([*self._parse_sweeper_params_config(), *arguments])
        for name in fixed:
            distributions.pop(name, None)
        if isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
        directions = self._get_directions()
        if len(directions) != 1:
            raise ValueError("hydra/sweeper=attnlab_optuna optimises one metric; set a single direction")
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            directions=directions,
            load_if_exists=True,
        )
        where = self.storage or "in memory"
        log.info("Optuna study %r (%s), %d earlier trials", study.study_name, where, len(study.trials))
        remaining = self.n_trials
        while remaining > 0:
            trials = [study.ask() for _ in range(min(self.n_jobs, remaining))]
            overrides = self._configure_trials(trials, distributions, fixed)
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns):
                value, error = _outcome(ret)
                if error is None:
                    study.tell(trial, values=[value])
                    continue
                trial.set_user_attr("error", error)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, error)
            remaining -= len(trials)
        self._save(study)

    def _save(self, study: optuna.Study) -> None:
        states = [t.state for t in study.trials]
        results: dict[str, Any] = {
            "name": "optuna",
            "n_complete": states.count(optuna.trial.TrialState.COMPLETE),
            "n_failed": states.count(optuna.trial.TrialState.FAIL),
        }
        if results["n_complete"]:
            results.update(best_params=study.best_trial.params, best_value=study.best_value)
            log.info("best value %s with %s", study.best_value, study.best_trial.params)
        OmegaConf.save(OmegaConf.create(results), Path(self.config.hydra.sweep.dir) / "optimization_results.yaml")


class AttnlabOptunaSweeper(OptunaSweeper):
    """hydra-optuna-sweeper's sweeper, running :class:`_TolerantImpl`."""

    def __init__(self, **kwargs: Any) -> None:  # the arguments of hydra-optuna-sweeper
        self.sweeper = _TolerantImpl(**kwargs)


@dataclass
class AttnlabOptunaSweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.attnlab_optuna.sweeper.AttnlabOptunaSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper", name="attnlab_optuna", node=AttnlabOptunaSweeperConf, provider="attnlab"
)


def register() -> None:
    """Makes the sweeper class known to Hydra (idempotent).

    Hydra finds plugins by scanning ``hydra_plugins``, which cannot see editable installs,
    so attnlab's command line registers this one explicitly.
    """
    Plugins.instance().register(AttnlabOptunaSweeper)
