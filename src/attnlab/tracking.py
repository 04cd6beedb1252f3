"""Weights & Biases set-up that never prompts, never hangs and never leaks state.

``mode=auto`` runs online when an API key is configured (``WANDB_API_KEY`` or a netrc
entry, as ``wandb login`` writes) and offline otherwise. The mode is passed to
``wandb.init`` for this run only; the process-wide ``WANDB_MODE`` is left alone (Lightning's
``offline=True`` would set it for every later run in the process). An offline or disabled
run also turns off wandb's usage telemetry for the process: wandb 0.31 decides it from its
process-wide settings, not the run's mode, and would otherwise post to the W&B server from
a run the user asked to keep offline.

The run's summary holds the best value of the optimised metric in its direction
(``define_metric(summary="max"|"min")``), not its last value; checkpoints can be logged as
artifacts (``log_model``), online or offline (``wandb sync`` uploads them later). Each job
of a sweep also links its run folder into ``<sweep>/wandb/``, one W&B folder for the whole
sweep: ``wandb leet <sweep>/wandb`` browses every job and ``wandb sync`` there uploads them.
"""

from __future__ import annotations

import netrc
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlparse

from pytorch_lightning.loggers import Logger, WandbLogger

from attnlab.errors import ConfigError

Mode = Literal["auto", "online", "offline", "disabled"]
MODES: tuple[str, ...] = get_args(Mode)
WANDB_ENV_MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")
"""What wandb itself accepts in ``WANDB_MODE``; anything else fails inside ``wandb.init``."""
_SECRET = re.compile(
    r"api[_-]?key|secret|passw(or)?d|credential|^token$|(auth|access|api|hf|bearer|refresh)[_-]?token$", re.IGNORECASE
)
"""Config keys whose values never reach a logger (``cls_token`` or ``pad_token`` are not secrets)."""


DEFAULT_HOSTS = ("api.forge.coreweave.com", "api.wandb.ai")
"""The hosts ``wandb login`` writes a netrc entry for when ``WANDB_BASE_URL`` is unset (wandb 0.31's default
server, and the W&B API it fronts, which older wandb versions wrote)."""


def has_api_key() -> bool:
    """True when W&B credentials are configured for this user."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    base = os.environ.get("WANDB_BASE_URL")
    hosts = [urlparse(base).hostname] if base else list(DEFAULT_HOSTS)
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        entries = netrc.netrc(path) if path.is_file() else None
    except (netrc.NetrcParseError, OSError):
        return False
    return entries is not None and any(host and entries.authenticators(host) is not None for host in hosts)


def resolve_mode(mode: str) -> str:
    """The W&B mode this run uses: an explicit ``WANDB_MODE`` wins over ``auto``."""
    if mode not in MODES:
        raise ConfigError(f"logger.wandb.mode={mode!r} is unknown; choose one of {', '.join(MODES)}")
    env = os.environ.get("WANDB_MODE")
    if env is not None and env not in WANDB_ENV_MODES:
        raise ConfigError(
            f"the environment variable WANDB_MODE={env!r} is not a W&B mode; unset it or set one of "
            + ", ".join(WANDB_ENV_MODES)
        )
    if mode != "auto":
        return mode
    if env in ("online", "offline", "disabled"):
        return env
    return "online" if has_api_key() else "offline"


RUN_ID_FILE = Path("wandb") / "attnlab-run-id"
"""Where a run folder keeps its W&B run id, so a resumed run logs to the same W&B run."""


def run_id(folder: Path) -> str:
    """The W&B run id of the run in ``folder``: made by its first job, read by every resume."""
    path = folder / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    new = uuid.uuid4().hex[:16]  # W&B ids: letters and digits, unique within the project
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new + "\n")
    tmp.replace(path)
    return new


class SummaryWandbLogger(WandbLogger):
    """A ``WandbLogger`` whose run summarises ``metric`` by its best value in ``mode``, and is
    linked into its sweep's W&B folder.

    W&B's summary of a metric is its last value unless ``define_metric`` says otherwise; the
    definition is made when the run starts (Lightning creates it lazily), before any value.
    """

    def __init__(self, *args: Any, sweep_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._summary: tuple[str, Literal["min", "max"]] | None = None
        self._sweep_dir = sweep_dir

    def summarise(self, metric: str, mode: Literal["min", "max"]) -> None:
        """The run's summary of ``metric`` is its best value in ``mode`` (call before the run starts)."""
        self._summary = (metric, mode)

    @property
    def experiment(self) -> Any:
        new = self._experiment is None
        run = super().experiment
        if new and self._experiment is not None:  # rank zero, the run just started
            if self._summary is not None:
                metric, mode = self._summary
                run.define_metric(metric, summary=mode)
            if self._sweep_dir is not None and getattr(run, "dir", None):
                link_into(Path(self._sweep_dir) / "wandb", Path(run.dir).parent)
        return run


def link_into(folder: Path, run_dir: Path) -> None:
    """Links the W&B run folder ``run_dir`` into ``folder`` (relative, so the sweep can move)."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / run_dir.name
    if not link.is_symlink() and not link.exists():
        link.symlink_to(os.path.relpath(run_dir, folder), target_is_directory=True)


def wandb_logger(
    project: str,
    save_dir: str,
    mode: Mode = "auto",
    entity: str | None = None,
    name: str | None = None,
    group: str | None = None,
    job_type: str = "train",
    tags: Sequence[str] = (),
    notes: str | None = None,
    log_model: bool | Literal["all"] = False,
    sweep_dir: str | None = None,
) -> WandbLogger:
    """A Lightning ``WandbLogger`` whose files live in ``<save_dir>/wandb``.

    The W&B run id is kept in the run folder (:func:`run_id`): a run resumed in its folder
    (``ckpt_path=last``) continues the same W&B run (``resume="allow"``), online or offline.

    A training run tells it its objective (:func:`summarise`), so that the W&B summary of
    the optimised metric is its best value in its direction.

    Args:
        log_model: log the checkpoints as W&B artifacts: ``True`` the best and last at the end
            of training, ``"all"`` each one when it is saved, ``False`` none. Offline, the files
            are copied into W&B's staging folder and uploaded by ``wandb sync``.
        sweep_dir: a multirun's folder: the run is linked into ``<sweep_dir>/wandb/``.
    """
    if log_model not in (True, False, "all"):
        raise ConfigError(f"logger.wandb.log_model={log_model!r} must be true, false or all")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    resolved = resolve_mode(mode)
    if resolved in ("offline", "disabled"):
        from wandb.analytics.opentelemetry import opentelemetry_proxy

        opentelemetry_proxy.disable()  # see the module's docstring
    return SummaryWandbLogger(
        id=run_id(Path(save_dir)),
        resume="allow",
        project=project,
        save_dir=save_dir,
        entity=entity,
        name=name,
        group=group,
        job_type=job_type,
        tags=list(tags),
        notes=notes,
        mode=resolved,
        log_model=log_model,
        sweep_dir=sweep_dir,
    )


def summarise(loggers: Iterable[Logger], metric: str, mode: Literal["min", "max"]) -> None:
    """W&B runs among ``loggers`` summarise ``metric`` by its best value in ``mode`` (the run's objective)."""
    for logger in loggers:
        if isinstance(logger, SummaryWandbLogger):
            logger.summarise(metric, mode)


def redact(config: Any) -> Any:
    """A copy of a plain config with values under secret-looking keys replaced."""
    if isinstance(config, Mapping):
        return {k: "<redacted>" if _SECRET.search(str(k)) else redact(v) for k, v in config.items()}
    if isinstance(config, list):
        return [redact(v) for v in config]
    return config


def finish(loggers: Iterable[Logger], failed: bool = False) -> None:
    """Close every W&B run this job opened, so the next job starts its own.

    Args:
        loggers: the job's loggers.
        failed: mark the W&B run as failed (exit code 1) rather than finished.
    """
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=1 if failed else 0)
