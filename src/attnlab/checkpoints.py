"""Reading attnlab checkpoints: the run config inside, and whether a run may resume from one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from attnlab.callbacks import EmbedRunConfig
from attnlab.errors import ConfigError, DataError

MODEL_KEYS = ("frontend", "backbone", "head")
"""Config sections that decide the shapes of the weights."""


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


def check_resumable(ckpt_path: Path, stored: DictConfig, resolved: Mapping[str, Any]) -> None:
    """Fail in one line when the checkpoint's model settings (``stored``, from
    :func:`read_run`) differ from this run's."""
    stored_flat = dict(kv for key in MODEL_KEYS for kv in _flat(OmegaConf.to_container(stored.get(key)), key))
    ours = dict(kv for key in MODEL_KEYS for kv in _flat(resolved.get(key), key))
    diffs = [
        f"{k}={stored_flat.get(k)} there, {ours.get(k)} here"
        for k in sorted(set(stored_flat) | set(ours))
        if stored_flat.get(k) != ours.get(k)
    ]
    if diffs:
        raise ConfigError(
            f"ckpt_path={ckpt_path} holds a different model ({'; '.join(diffs[:3])}); "
            "resume with the model settings it was trained with"
        )
