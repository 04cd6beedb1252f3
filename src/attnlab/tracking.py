"""Weights & Biases set-up that never prompts, never hangs and never leaks state.

``mode=auto`` runs online when an API key is configured (``WANDB_API_KEY`` or a netrc
entry, as ``wandb login`` writes) and offline otherwise. The mode is passed to
``wandb.init`` for this run only; the process-wide ``WANDB_MODE`` is left alone (Lightning's
``offline=True`` would set it for every later run in the process).
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


def has_api_key() -> bool:
    """True when W&B credentials are configured for this user."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


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
) -> WandbLogger:
    """A Lightning ``WandbLogger`` whose files live in ``<save_dir>/wandb``.

    The W&B run id is kept in the run folder (:func:`run_id`): a run resumed in its folder
    (``ckpt_path=last``) continues the same W&B run (``resume="allow"``), online or offline.
    """
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
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
        mode=resolve_mode(mode),
    )


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
