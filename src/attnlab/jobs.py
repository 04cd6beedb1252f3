"""One job of a run or a sweep: its status file, and failures that do not end a sweep.

Every job folder holds ``job.json``: ``status`` goes from ``running`` to ``completed``,
``failed`` (with the one-line error) or ``interrupted``, next to the job's overrides, its
start and end times, the process that runs it (``pid``, ``host``), and what the task adds
with :func:`annotate` (a training run: its ``objective``, ``{"metric": ..., "mode": "min" |
"max"}``). ``attnlab-report`` reads it, so a sweep that is still running reports its jobs
as they stand.

In a multirun, a failing job is recorded, logged and returns NaN, so the sweep goes on
(the Optuna sweeper reports a NaN as a failed trial). A single run re-raises, so the
command line reports the error and exits non-zero.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from attnlab.errors import find_user_error

log = logging.getLogger(__name__)

STATUS_FILE = "job.json"
FAILED = math.nan
"""What a failed multirun job returns to the sweeper."""


def is_multirun() -> bool:
    """True inside a job of ``attnlab -m ...``."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_dir() -> Path:
    """The current job's output folder."""
    return Path(HydraConfig.get().runtime.output_dir)


def job_overrides() -> list[str]:
    """The command-line overrides that made this job (a sweep's job: its own values)."""
    return as_strings(HydraConfig.get().overrides.task)


def as_strings(overrides: Any) -> list[str]:
    """Hydra's recorded overrides as typed: ``data.root=${oc.env:HOME}/x`` is not resolved."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(overrides):
        overrides = OmegaConf.to_container(overrides, resolve=False)
    return [str(o) for o in overrides]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_status(folder: Path, record: dict[str, Any]) -> None:
    """Writes ``job.json`` atomically, from rank zero only (DDP workers share the folder)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only  # here: attnlab-report reads jobs without Lightning

    if rank_zero_only.rank != 0:
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{STATUS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(folder / STATUS_FILE)


def read_status(folder: Path) -> dict[str, Any] | None:
    """The job's ``job.json``, or None when it has none (yet) or it cannot be read."""
    try:
        return json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def annotate(folder: Path, **fields: Any) -> None:
    """Adds ``fields`` to the ``job.json`` of the job running in ``folder`` (none there: nothing to add to)."""
    status = read_status(folder)
    if status is not None:
        write_status(folder, {**status, **fields})


def _update(folder: Path, record: dict[str, Any], **fields: Any) -> None:
    """Writes ``record`` with ``fields``, keeping what the task added with :func:`annotate`."""
    record.update({k: v for k, v in (read_status(folder) or {}).items() if k not in record})
    record.update(fields)
    write_status(folder, record)


def describe(exc: BaseException) -> tuple[str, bool]:
    """The one-line message of ``exc`` and whether it is the user's error (not a bug)."""
    user = find_user_error(exc)
    if user is not None:
        return str(user), True
    return f"{type(exc).__name__}: {exc}".splitlines()[0], False


def run_job(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Runs ``task(cfg)`` as one job, recording its status in the job folder.

    Returns:
        The task's return value; in a multirun, :data:`FAILED` for a job that raised.
    """
    folder = job_dir()
    record: dict[str, Any] = {"status": "running", "overrides": job_overrides(), "started": _now()}
    record.update(pid=os.getpid(), host=socket.gethostname())  # `ckpt_path=last` never resumes a live run
    write_status(folder, record)
    try:
        value = task(cfg)
    except Exception as exc:
        message, is_user_error = describe(exc)
        _update(folder, record, status="failed", error=message, user_error=is_user_error, finished=_now())
        if not is_multirun():
            raise
        if is_user_error:
            log.error("job failed: %s", message)
        else:
            log.exception("job failed with an unexpected error")
        return FAILED
    except BaseException:  # Ctrl-C or a SystemExit: the sweep stops here
        _update(folder, record, status="interrupted", finished=_now())
        raise
    done: dict[str, Any] = {"status": "completed", "finished": _now()}
    if isinstance(value, float):
        done["value"] = None if math.isnan(value) else value
    _update(folder, record, **done)
    return value
