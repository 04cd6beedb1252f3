"""The failure-tolerant sweep loop of :class:`~hydra_plugins.attnlab_optuna.sweeper.AttnlabOptunaSweeper`.

The ask → launch → tell loop of hydra-optuna-sweeper 1.2.0's ``OptunaSweeperImpl.sweep``,
changed where a trial fails: a job that failed, returned no number or returned NaN (what
attnlab's failed multirun jobs return, see :mod:`attnlab.jobs`) is told to Optuna as
``FAIL``, with its error in the user attribute ``error``, and the study goes on. A study
whose trials all failed writes ``optimization_results.yaml`` without a best trial. The rest
(search-space syntax under ``hydra.sweeper.params``, samplers, storage) is
hydra-optuna-sweeper's own, reached through its private helpers: hence the exact pin.

The leading underscore keeps Hydra's plugin scan from importing this module (and Optuna)
on every command.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
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


class TolerantImpl(OptunaSweeperImpl):
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
