"""Lightning's ``ddp`` strategy starts ranks 1.. by running the command line again.

Under Hydra that command would start a new run folder, or a whole new sweep when it was
``attnlab -m ...``. Instead, each job tells the processes it starts (through the
environment) which job they belong to, and :func:`rank_argv` turns a rank's command line
into exactly that job in that folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ENV = "ATTNLAB_DDP_JOB"


LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
"""What Lightning's launcher sets in the environment of rank 0; left behind, the next job
of a sweep would think a cluster had started its processes and wait for them forever."""


@contextmanager
def ranks_join(run_dir: Path, overrides: Sequence[str], job_name: str) -> Iterator[None]:
    """Within the block, ranks that Lightning starts re-run this job in ``run_dir``.

    On the way out, the environment Lightning's launcher changed is put back as it was.
    """
    saved = {name: os.environ.get(name) for name in (ENV, *LAUNCH_ENV)}
    os.environ[ENV] = json.dumps({"run_dir": str(run_dir), "overrides": list(overrides), "job_name": job_name})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rank_argv(argv: Sequence[str]) -> list[str]:
    """The arguments this process runs with: ``argv``, or for a rank > 0 its job's overrides."""
    spec = os.environ.get(ENV)
    rank = os.environ.get("LOCAL_RANK", "0")
    if spec is None or rank == "0":
        return list(argv)
    job = json.loads(spec)
    return [
        *job["overrides"],
        f"hydra.run.dir={_quoted(job['run_dir'])}",
        "hydra.output_subdir=null",  # rank 0 wrote .hydra/ already
        f"hydra.job.name={job['job_name']}_rank{rank}",
    ]


def end_process_group() -> None:
    """Destroys this process's DDP group, so the next job of a sweep starts its own.

    Lightning leaves the group initialised after ``fit``/``test``; a second DDP job in the
    same process would reuse it, with peers that have already exited.
    """
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
