"""Each job's share of the cores: torch's intra-op threads per job, set once when the job starts.

torch starts one intra-op thread per core of the machine in every process. Jobs that run
side by side (a sweep's parallel workers, SLURM jobs sharing a node) then run many more
threads than there are cores, and each runs several times slower than it would on its
share alone. So every attnlab job sets its thread count, in this order:

1. ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``, which torch reads after it) in the
   environment: the number torch already took from it. Set by you, it always wins;
   joblib's workers get it from joblib, as ``cpu_count() // n_jobs``, unless you set it.
2. Otherwise the CPUs this process may use (SLURM's ``SLURM_CPUS_PER_TASK``, at most the
   process's CPU affinity, else the affinity alone) divided by the jobs the launcher runs
   at once (``hydra.launcher.n_jobs`` in a multirun, joblib's meaning: -1 = one per CPU).

Two runs started by hand side by side know nothing of each other: give each its cores
(``taskset -c 0-3 attnlab ...``) or its threads (``OMP_NUM_THREADS=4 attnlab ...``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from attnlab.errors import ConfigError

log = logging.getLogger(__name__)

ENV_THREADS = ("MKL_NUM_THREADS", "OMP_NUM_THREADS")
"""Variables torch takes its intra-op thread count from; the first one set wins (MKL's, as in torch)."""


@dataclass(frozen=True)
class Threads:
    """A job's intra-op thread count and, for the log, where it came from."""

    count: int
    reason: str


def _positive(name: str, value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{name}={value} is not a number of {what}; set a whole number >= 1 or unset it")
    return number


def affinity() -> int:
    """The CPUs this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def jobs_at_once(n_jobs: int | None, cpus: int) -> int:
    """How many jobs a launcher with joblib's ``n_jobs`` runs at once on ``cpus`` CPUs."""
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:  # joblib: -1 = all CPUs, -2 = all but one, ...
        return max(1, cpus + 1 + n_jobs)
    return n_jobs


def plan(environ: Mapping[str, str], cpus_by_affinity: int, n_jobs: int | None) -> Threads:
    """The thread count for one job (see the module's docstring for the order).

    Args:
        environ: the process environment.
        cpus_by_affinity: the CPUs the process may run on.
        n_jobs: the launcher's ``n_jobs`` in a multirun (joblib's meaning), or None.

    Raises:
        ConfigError: a thread variable that is not a whole number >= 1.
    """
    for name in ENV_THREADS:
        if environ.get(name, "") != "":
            count = _positive(name, environ[name], "threads")
            return Threads(count, f"{name}={count}")
    cpus, where = cpus_by_affinity, "CPU affinity"
    if environ.get("SLURM_CPUS_PER_TASK", "") != "":
        cpus = min(_positive("SLURM_CPUS_PER_TASK", environ["SLURM_CPUS_PER_TASK"], "CPUs"), cpus_by_affinity)
        where = "SLURM_CPUS_PER_TASK"
    jobs = jobs_at_once(n_jobs, cpus)
    if jobs == 1:
        return Threads(cpus, f"{cpus} CPUs by {where}")
    return Threads(max(1, cpus // jobs), f"{cpus} CPUs by {where} shared by {jobs} parallel jobs")


def launcher_n_jobs() -> int | None:
    """The launcher's ``n_jobs`` when this job is one of a multirun (joblib), else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get().launcher.get("n_jobs")


def configure() -> Threads:
    """Sets torch's intra-op threads for this job and logs the count and its source in one line.

    The line is an info line where the job gets less than the CPUs it may run on (a share,
    or a thread variable), and a debug line where it simply takes them all.
    """
    import torch

    cpus = affinity()
    threads = plan(os.environ, cpus, launcher_n_jobs())
    torch.set_num_threads(threads.count)
    level = logging.DEBUG if threads.reason == f"{cpus} CPUs by CPU affinity" else logging.INFO
    log.log(level, "threads: %d intra-op (%s)", threads.count, threads.reason)
    return threads
