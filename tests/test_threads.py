"""Each job takes its share of the cores; a thread count the user set always wins."""

from __future__ import annotations

import logging

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from attnlab import cli, config, threads
from attnlab.errors import ConfigError


@pytest.mark.parametrize(
    ("environ", "cpus", "n_jobs", "count"),
    [
        ({}, 8, None, 8),  # one job alone: every CPU it may use
        ({}, 8, 2, 4),
        ({}, 8, 3, 2),  # 8 // 3
        ({}, 2, 4, 1),  # never fewer than one
        ({}, 8, -1, 1),  # joblib's -1: one job per CPU
        ({}, 8, -2, 1),  # all CPUs but one: 7 jobs
        ({}, 8, -7, 4),  # 8 + 1 - 7 = 2 jobs
        ({"SLURM_CPUS_PER_TASK": "4"}, 64, None, 4),  # the allocation, not the node
        ({"SLURM_CPUS_PER_TASK": "4"}, 64, 2, 2),
        ({"SLURM_CPUS_PER_TASK": "16"}, 6, None, 6),  # never more than the affinity allows
        ({"OMP_NUM_THREADS": "3"}, 8, 2, 3),  # the user's setting wins over every share
        ({"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "1"}, 8, None, 3),
        ({"MKL_NUM_THREADS": "5", "OMP_NUM_THREADS": "3"}, 8, None, 5),  # torch reads MKL's after OMP's
        ({"OMP_NUM_THREADS": ""}, 8, 4, 2),  # empty is unset
    ],
)
def test_the_thread_count_of_a_job(environ, cpus, n_jobs, count):
    assert threads.plan(environ, cpus, n_jobs).count == count


def test_the_reason_says_where_the_count_came_from():
    assert threads.plan({"OMP_NUM_THREADS": "3"}, 8, 2).reason == "OMP_NUM_THREADS=3"
    assert threads.plan({}, 8, 2).reason == "8 CPUs by CPU affinity shared by 2 parallel jobs"
    assert threads.plan({"SLURM_CPUS_PER_TASK": "4"}, 8, None).reason == "4 CPUs by SLURM_CPUS_PER_TASK"


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_thread_variable_that_is_not_a_count_is_refused(value):
    with pytest.raises(ConfigError, match=rf"^OMP_NUM_THREADS={value} is not a number of threads; set a whole"):
        threads.plan({"OMP_NUM_THREADS": value}, 8, None)
    with pytest.raises(ConfigError, match=rf"^SLURM_CPUS_PER_TASK={value} is not a number of CPUs; set"):
        threads.plan({"SLURM_CPUS_PER_TASK": value}, 8, None)


@pytest.fixture
def hydra_job(tmp_path):
    """Sets Hydra's config as a launcher sets it for a job: ``set(overrides, mode)``."""

    def set_job(overrides: list[str], mode: RunMode) -> None:
        with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.mode = mode
            cfg.hydra.runtime.output_dir = str(tmp_path)
        HydraConfig.instance().set_config(cfg)

    before = torch.get_num_threads()
    yield set_job
    HydraConfig.instance().cfg = None
    torch.set_num_threads(before)


def test_the_launchers_parallelism_counts_only_in_a_multirun(hydra_job):
    hydra_job(["launcher=joblib", "hydra.launcher.n_jobs=4"], RunMode.MULTIRUN)
    assert threads.launcher_n_jobs() == 4
    hydra_job(["launcher=joblib", "hydra.launcher.n_jobs=4"], RunMode.RUN)  # `attnlab launcher=joblib` without -m
    assert threads.launcher_n_jobs() is None
    hydra_job([], RunMode.MULTIRUN)  # Hydra's basic launcher: one job after another
    assert threads.launcher_n_jobs() is None


def test_each_job_sets_its_threads_before_it_runs_and_logs_them_once(hydra_job, monkeypatch, caplog):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "affinity", lambda: 8)
    hydra_job(["launcher=joblib", "hydra.launcher.n_jobs=4"], RunMode.MULTIRUN)
    seen = []
    with caplog.at_level(logging.INFO, logger="attnlab.threads"):
        monkeypatch.setattr("attnlab.train.train", lambda cfg: seen.append(torch.get_num_threads()) or 0.5)
        cli._as_job(cli._train_task)(OmegaConf.create())
    assert seen == [2]
    assert [r.getMessage() for r in caplog.records if r.name == "attnlab.threads"] == [
        "threads: 2 intra-op (8 CPUs by CPU affinity shared by 4 parallel jobs)"
    ]
