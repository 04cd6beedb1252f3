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


@contextmanager
def ranks_join(run_dir: Path, overrides: Sequence[str], job_name: str) -> Iterator[None]:
    """Within the block, ranks that Lightning starts re-run this job in ``run_dir``."""
    previous = os.environ.get(ENV)
    os.environ[ENV] = json.dumps({"run_dir": str(run_dir), "overrides": list(overrides), "job_name": job_name})
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous


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
