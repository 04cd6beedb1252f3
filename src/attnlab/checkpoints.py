"""attnlab checkpoints: writing them atomically, the run config inside, and whether a run may resume from one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import torch
from fsspec.utils import get_protocol
from lightning_fabric.plugins import CheckpointIO, TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from attnlab.callbacks import EmbedRunConfig
from attnlab.errors import ConfigError, DataError

MODEL_KEYS = ("frontend", "backbone", "head")
"""Config sections that decide the shapes of the weights."""
RECORDING_KEYS = ("ckpt_path", "logger", "tags")
"""Config sections that say where a run is recorded (or resumed from), not what it computes."""


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Writes a file so that a crash at any moment leaves either the old file or the new one.

    ``write`` fills a temporary file in the same folder (so the rename never crosses file
    systems), which is flushed to disk and then renamed over ``path``; the folder is synced
    so the rename survives a power cut. A temporary file left by a kill is named
    ``.<name>.<pid>.tmp``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoint writer, atomic on local disks.

    Lightning's own writer (``_atomic_save``) writes into an fsspec transaction whose
    temporary file lives in the system temp folder; where that is another file system
    than the run folder (``/tmp`` on a node, outputs on shared storage), committing it is a
    copy onto the old checkpoint, and a kill during the copy leaves a truncated file.
    Remote paths (``s3://``...) keep Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or get_protocol(str(path)) != "file":
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        write_atomic(Path(path), lambda f: torch.save(checkpoint, f))


def trainer_plugins(configured: Any) -> list[Any]:
    """The Trainer's ``plugins``: the configured ones, plus :class:`AtomicCheckpointIO` unless
    they name a checkpoint writer themselves."""
    if configured is None:
        plugins = []
    elif isinstance(configured, Sequence) and not isinstance(configured, str):
        plugins = list(configured)
    else:
        plugins = [configured]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


def read_run(ckpt_path: Path) -> tuple[DictConfig, dict[str, Any]]:
    """The training config and data info stored in an attnlab checkpoint."""
    if not ckpt_path.is_file():
        raise DataError(
            f"ckpt_path={ckpt_path} does not exist; point it at a .ckpt file, e.g. <run>/checkpoints/last.ckpt"
        )
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"ckpt_path={ckpt_path} is not a readable checkpoint ({type(exc).__name__})") from exc
    payload = checkpoint.get(EmbedRunConfig.KEY) if isinstance(checkpoint, dict) else None
    if payload is None:
        raise DataError(f"ckpt_path={ckpt_path} was not written by attnlab (it has no run config)")
    return OmegaConf.create(payload["config"]), dict(payload["data_info"])


def _flat(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _flat(value, f"{prefix}.{key}")
    else:
        yield prefix, node


def check_resumable(ckpt_path: Path, stored: DictConfig, resolved: Mapping[str, Any], same_run: bool = False) -> None:
    """Fail in one line when this run's config does not match the checkpoint's (``stored``,
    from :func:`read_run`).

    Args:
        ckpt_path: the checkpoint, for the message.
        stored: the config the checkpoint was trained with.
        resolved: this run's resolved config.
        same_run: the run continues in its own folder (``ckpt_path=last``): every setting
            but :data:`RECORDING_KEYS` must match, as the result is reported as that run's.
            Otherwise (a checkpoint used to start a new run) only the model's settings must.
    """
    stored_plain: dict[str, Any] = OmegaConf.to_container(stored)  # type: ignore[assignment]
    keys = sorted((set(stored_plain) | set(resolved)) - set(RECORDING_KEYS)) if same_run else MODEL_KEYS
    stored_flat = dict(kv for key in keys for kv in _flat(stored_plain.get(key), key))
    ours = dict(kv for key in keys for kv in _flat(resolved.get(key), key))
    diffs = [
        f"{k}={stored_flat.get(k)} there, {ours.get(k)} here"
        for k in sorted(set(stored_flat) | set(ours))
        if stored_flat.get(k) != ours.get(k)
    ]
    if not diffs:
        return
    if same_run:
        raise ConfigError(
            f"cannot resume the run in {ckpt_path.parent.parent}: it was started with other settings "
            f"({'; '.join(diffs[:3])}); resume it with the settings it started with, or start a new run"
        )
    raise ConfigError(
        f"ckpt_path={ckpt_path} holds a different model ({'; '.join(diffs[:3])}); "
        "resume with the model settings it was trained with"
    )
