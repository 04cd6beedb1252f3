"""The Optuna sweeper's loop: a failed, NaN or non-numeric trial is ``FAIL`` and the study goes on.

These are the cases hydra-optuna-sweeper 1.3.0 still ends the sweep on (see docs/sweeps.md):
a NaN return, and a study whose trials all failed. The launcher is a stand-in that returns
what Hydra's launchers return for such jobs, so the loop runs in this process in a moment.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from hydra_plugins.attnlab_optuna._impl import TolerantImpl


class Launcher:
    """Returns, job after job, the outcomes it was given; each job folder holds its job.json."""

    def __init__(self, folder: Path, outcomes: list[object]) -> None:
        self.folder, self.outcomes, self.launched = folder, list(outcomes), []

    def launch(self, overrides, initial_job_idx: int) -> list[JobReturn]:
        returns = []
        for number, job in enumerate(overrides, start=initial_job_idx):
            outcome = self.outcomes.pop(0)
            job_dir = self.folder / str(number)
            job_dir.mkdir(parents=True)
            if isinstance(outcome, float) and math.isnan(outcome):  # what attnlab's failed jobs return
                (job_dir / "job.json").write_text(json.dumps({"status": "failed", "error": "loss is nan at step 3"}))
            ret = JobReturn(
                overrides=list(job), hydra_cfg=OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job_dir)}}})
            )
            ret.status = JobStatus.FAILED if isinstance(outcome, Exception) else JobStatus.COMPLETED
            ret._return_value = outcome
            returns.append(ret)
            self.launched.append(list(job))
        return returns


def sweep(tmp_path: Path, outcomes: list[object], n_jobs: int = 1) -> tuple[optuna.Study, dict]:
    storage = optuna.storages.InMemoryStorage()
    impl = TolerantImpl(
        sampler=optuna.samplers.RandomSampler(seed=0),
        direction="maximize",
        storage=storage,
        study_name="probe",
        n_trials=len(outcomes),
        n_jobs=n_jobs,
        search_space=None,
        custom_search_space=None,
        params=OmegaConf.create({"lr": "interval(0.001, 0.1)"}),
    )
    impl.launcher = Launcher(tmp_path, outcomes)
    impl.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    impl.sweep(arguments=[])
    assert len(impl.launcher.launched) == len(outcomes)  # every trial ran
    results = OmegaConf.to_container(OmegaConf.load(tmp_path / "optimization_results.yaml"))
    return optuna.load_study(study_name="probe", storage=storage), results


def test_failed_nan_and_non_numeric_trials_are_failed_and_the_study_goes_on(tmp_path):
    study, results = sweep(tmp_path, [0.5, math.nan, RuntimeError("boom"), None, 0.75], n_jobs=2)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "FAIL", "FAIL", "COMPLETE"]
    errors = [t.user_attrs.get("error") for t in study.trials]
    assert errors == [None, "loss is nan at step 3", "RuntimeError: boom", "the job returned None, not a number", None]
    assert results["n_complete"] == 2 and results["n_failed"] == 3
    assert results["best_value"] == pytest.approx(0.75) and results["best_params"] == study.trials[4].params


def test_a_study_whose_trials_all_failed_ends_without_a_best_trial(tmp_path):
    study, results = sweep(tmp_path, [math.nan, RuntimeError("boom")])
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL"]
    assert results == {"name": "optuna", "n_complete": 0, "n_failed": 2}
