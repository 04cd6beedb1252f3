"""Which run ``ckpt_path=last`` continues, and what an interrupted run says about continuing.

A run continues in its own folder from ``<run>/checkpoints/last.ckpt`` (the end of its
latest epoch, see :mod:`attnlab.callbacks.checkpoint`):

- a single run (``attnlab <overrides> ckpt_path=last``): its folder is timestamped, so
  before Hydra makes a new one, :func:`locate_run` finds the newest run folder made by the
  same overrides and runs there (``hydra.run.dir``). That run must be unfinished (its
  ``job.json`` not ``completed``), not running, and have a ``last.ckpt``; anything else
  is refused in one line.
- a job in a fixed folder (a sweep's job, ``hydra.run.dir=...``): :func:`checkpoint_to_resume`
  takes that folder's ``last.ckpt``. A job SLURM requeued (``SLURM_RESTART_COUNT`` > 0,
  e.g. by submitit or Lightning's ``SLURMEnvironment`` after pre-emption) resumes from its
  folder's ``last.ckpt`` without being asked: the folder is the job's own.

Both compare the whole config with the checkpoint's (:func:`attnlab.checkpoints.check_resumable`).
:func:`locate_run` runs in the ``attnlab`` command before Hydra starts; it reads only
``job.json`` files, never a checkpoint.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from itertools import takewhile
from pathlib import Path
from typing import Any

from attnlab import jobs
from attnlab.errors import ConfigError

log = logging.getLogger(__name__)

WORD = "last"
"""``ckpt_path=last``: this run's own last checkpoint."""
LAST = Path("checkpoints") / "last.ckpt"
"""Where a run folder keeps the checkpoint it resumes from."""
FOUND_ENV = "ATTNLAB_RESUMED_RUN"
"""Set by :func:`locate_run` to the folder it chose, so the resume hint stays one word."""
EXIT_SIGINT, EXIT_SIGTERM = 130, 143
"""Exit statuses of a run stopped by Ctrl-C or SIGTERM (128 + the signal's number)."""


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def run_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides that define a run: all but ``ckpt_path=`` and Hydra's own."""
    return [o for o in overrides if _key(o) != "ckpt_path" and not _key(o).startswith(("hydra.", "hydra/"))]


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run_dir_pattern(argv: Sequence[str]) -> str | None:
    """``hydra.run.dir`` as configured for ``argv``, before interpolation (None: Hydra will fail on ``argv``)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from attnlab.config import CONFIG_DIR

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("train", overrides=list(argv), return_hydra_config=True)
    except Exception:  # Hydra reports a bad command line itself
        return None
    return OmegaConf.to_container(cfg.hydra.run, resolve=False)["dir"]  # type: ignore[index]


def _alive(record: dict[str, Any]) -> bool:
    """True when the process that wrote ``record`` still runs (on this machine; elsewhere: unknown, False)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or record.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_run(pattern: str, overrides: Sequence[str], cwd: Path | None = None) -> Path:
    """The run folder ``attnlab <overrides> ckpt_path=last`` continues.

    Args:
        pattern: ``hydra.run.dir`` before interpolation, e.g.
            ``outputs/runs/${now:%Y-%m-%d}/${now:%H-%M-%S-%f}``; its parts from the first
            interpolation on are matched by any folder name.
        overrides: the run's overrides (see :func:`run_overrides`).
        cwd: what a relative ``pattern`` is relative to (the current folder).

    Raises:
        ConfigError: the newest run of these overrides cannot be continued, or there is none.
    """
    parts = Path(pattern).parts
    fixed = list(takewhile(lambda part: "${" not in part, parts))
    root = (cwd or Path.cwd()) / Path(*fixed) if fixed else cwd or Path.cwd()
    depth = len(parts) - len(fixed)
    folders = list(root.glob("/".join(["*"] * depth))) if depth else [root]
    ours = run_overrides(overrides)
    records = {folder: record for folder in folders if (record := jobs.read_status(folder)) is not None}
    newest_first = sorted(records, key=lambda folder: (records[folder].get("started", ""), str(folder)), reverse=True)
    runs = [(folder, records[folder]) for folder in newest_first]
    mine = [(folder, record) for folder, record in runs if run_overrides(record.get("overrides", [])) == ours]
    command = " ".join(["attnlab", *ours])
    if not mine:
        other = ""
        if runs:
            folder, record = runs[0]
            theirs = " ".join(["attnlab", *run_overrides(record.get("overrides", []))])
            other = f" (the newest there, {folder}, is `{theirs}`)"
        raise ConfigError(
            f"ckpt_path=last: nothing to resume: no run of `{command}` under {root}{other}; "
            "start it without ckpt_path=last"
        )
    folder, record = mine[0]
    if record.get("status") == "completed":
        raise ConfigError(f"ckpt_path=last: nothing to resume: the newest run of `{command}`, {folder}, completed")
    if _alive(record):
        raise ConfigError(
            f"ckpt_path=last: the newest run of `{command}`, {folder}, is still running (pid {record['pid']})"
        )
    if not (folder / LAST).is_file():
        raise ConfigError(
            f"ckpt_path=last: nothing to resume: the newest run of `{command}`, {folder}, stopped before its "
            f"first epoch ended (it has no {LAST}); start it without ckpt_path=last"
        )
    return folder


def locate_run(argv: list[str]) -> list[str]:
    """``attnlab``'s arguments, with ``hydra.run.dir`` set to the run that ``ckpt_path=last`` continues.

    Only a single run whose folder Hydra would make is looked up; with flags (``-m``) or
    an explicit ``hydra.run.dir`` the folder is fixed and the job itself checks it.
    """
    if f"ckpt_path={WORD}" not in argv or any(a.startswith("-") or _key(a) == "hydra.run.dir" for a in argv):
        return argv
    pattern = _run_dir_pattern(argv)
    if pattern is None:
        return argv
    folder = find_run(pattern, argv)
    os.environ[FOUND_ENV] = str(folder)
    return [*argv, f"hydra.run.dir={_quoted(str(folder))}"]


def slurm_restarts() -> int:
    """How often SLURM has requeued this job (0 outside SLURM)."""
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return 0


def checkpoint_to_resume(ckpt_path: str | None, run_dir: Path) -> tuple[Path | None, bool]:
    """The checkpoint this job starts from, and whether that continues the run in ``run_dir``.

    Args:
        ckpt_path: the ``ckpt_path`` setting: None, ``last``, or a checkpoint file.
        run_dir: this job's folder.
    """
    last = run_dir / LAST
    if ckpt_path == WORD:
        if not last.is_file():
            raise ConfigError(
                f"ckpt_path=last: nothing to resume: {run_dir} has no {LAST}; start the run without ckpt_path=last"
            )
        return last, True
    if ckpt_path is None:
        if slurm_restarts() > 0 and last.is_file():
            log.info("SLURM requeued this job (restart %d): resuming from %s", slurm_restarts(), last)
            return last, True
        return None, False
    path = Path(ckpt_path)
    return path, path.resolve() == last.resolve()


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir``: its overrides and ``ckpt_path=last``,
    and the folder where ``ckpt_path=last`` alone would not find it (a sweep's job, a folder
    given with ``hydra.run.dir``)."""
    from hydra.core.hydra_config import HydraConfig

    words = ["attnlab"]
    folder_given = True
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        words += run_overrides(jobs.as_strings(hydra_cfg.overrides.task))
        chosen = [o for o in jobs.as_strings(hydra_cfg.overrides.hydra) if _key(o) == "hydra.run.dir"]
        found = os.environ.get(FOUND_ENV)
        by_word = found is not None and Path(found).resolve() == run_dir.resolve()
        folder_given = jobs.is_multirun() or (bool(chosen) and not by_word)
    words.append(f"ckpt_path={WORD}")
    if folder_given:
        words.append(f"hydra.run.dir={_quoted(str(run_dir))}")
    return " ".join(words)
