"""What a run folder says about its run, read from files only (no Lightning, no W&B).

A run folder (a single run's, or one job of a sweep) holds ``job.json`` (status, error,
overrides, times: :mod:`attnlab.jobs`), ``config.yaml`` (resolved), ``metrics.json`` (final
metrics), ``history/`` (:class:`~attnlab.callbacks.History`), ``confusion_matrix.csv`` and,
when maps were drawn, ``attention/``. Any of them may be missing: a job that is still
running has no ``metrics.json`` yet, and its history grows while it runs.
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml

from attnlab.errors import ConfigError
from attnlab.jobs import read_status

Mode = Literal["min", "max"]

_MIN_NAMES = re.compile(r"(^|[/_])(loss|cer|wer|per|error|err|mse|mae|rmse|perplexity|ppl)($|[/_])")
"""Metric names that are better when lower (losses and error rates)."""

EPOCHS = "epochs.jsonl"
LOGGED = "logged.jsonl"
HPARAMS = "hparams.json"
"""The files of ``<run>/history/`` (written by :class:`~attnlab.callbacks.History`)."""

THROUGHPUT_KEYS = ("train/samples_per_sec", "train/device/samples_per_sec")
"""Where the throughput is, in the order preferred (all devices, then one)."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a last line still being written is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def direction(metric: str, head: str | None = None) -> Mode:
    """The direction of ``metric``: as the run's head declares it (:mod:`attnlab.objective`), or by name.

    Args:
        metric: a logged name, e.g. ``val/acc`` or ``test/cer``.
        head: the head's ``_target_`` from the run's config; when it declares the metric, its
            declaration decides. Otherwise the name does: ``min`` for losses and error rates,
            else ``max``.
    """
    if head is not None:
        from attnlab import objective

        try:
            modes = objective.metric_modes(objective.head_class({"head": {"_target_": head}}))
        except ConfigError:
            modes = {}
        name = metric.rsplit("/", 1)[-1]
        if name in modes:
            return modes[name]
    return "min" if _MIN_NAMES.search(metric.lower()) else "max"


def run_objective(status: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[str, Mode] | None:
    """The metric a run optimised and its direction: ``job.json``'s ``objective`` when recorded,
    else ``config.yaml``'s ``optimized_metric`` with :func:`direction`; None when neither says."""
    recorded = status.get("objective")
    if isinstance(recorded, Mapping) and recorded.get("metric") and recorded.get("mode") in ("min", "max"):
        return str(recorded["metric"]), recorded["mode"]
    metric = config.get("optimized_metric")
    return (str(metric), direction(str(metric), head_of(config))) if metric else None


def head_of(config: Mapping[str, Any]) -> str | None:
    """The head's ``_target_`` in a run's config, if any."""
    head = config.get("head")
    target = head.get("_target_") if isinstance(head, Mapping) else None
    return target if isinstance(target, str) else None


@dataclass
class Job:
    """What one run folder says about its run.

    Attributes:
        metrics: ``metrics.json``; for a run without one yet, its latest epoch in the history.
        epochs: the per-epoch history (``history/epochs.jsonl``), oldest first.
        seconds: wall time from start to end (to now, while running).
        params, attention_bytes: the model's parameter count and its largest attention
            layer's measured peak memory (``model/*`` in ``history/hparams.json``).
        throughput: training samples per second, the median of the logged values.
    """

    name: str
    folder: Path
    overrides: dict[str, str]
    status: str
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    objective: tuple[str, Mode] | None = None
    head: str | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float | None = None
    params: int | None = None
    attention_bytes: int | None = None
    throughput: float | None = None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _overrides(folder: Path, status: Mapping[str, Any]) -> list[str]:
    if "overrides" in status:
        return list(status["overrides"])
    return list(_read_yaml(folder / ".hydra" / "overrides.yaml") or [])


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def _config(folder: Path) -> dict[str, Any]:
    for path in (folder / "config.yaml", folder / ".hydra" / "config.yaml"):
        config = _read_yaml(path)
        if isinstance(config, dict):
            return config
    return {}


def _seconds(status: Mapping[str, Any]) -> float | None:
    if not status.get("started"):
        return None
    start = datetime.fromisoformat(status["started"])
    end = datetime.fromisoformat(status["finished"]) if status.get("finished") else datetime.now(timezone.utc)
    return (end - start).total_seconds()


def _throughput(folder: Path) -> float | None:
    records = read_jsonl(folder / "history" / LOGGED)
    for key in THROUGHPUT_KEYS:
        values = [r[key] for r in records if r.get(key) is not None]
        if values:
            return statistics.median(values)
    return None


def _metrics(folder: Path, epochs: list[dict[str, Any]]) -> dict[str, float]:
    try:
        raw = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        raw = {k: v for k, v in epochs[-1].items() if "/" in k} if epochs else {}
    return {k: float("nan") if v is None else float(v) for k, v in raw.items()}


def read_job(folder: Path) -> Job:
    """The :class:`Job` recorded in ``folder``."""
    status = read_status(folder) or {}
    epochs = read_jsonl(folder / "history" / EPOCHS)
    hparams = _read_json(folder / "history" / HPARAMS)
    done = (folder / "metrics.json").is_file()
    config = _config(folder)
    return Job(
        name=folder.name,
        folder=folder,
        overrides=dict(_split(o) for o in _overrides(folder, status)),
        status=status.get("status") or ("completed" if done else "running"),
        error=status.get("error"),
        metrics=_metrics(folder, epochs),
        objective=run_objective(status, config),
        head=head_of(config),
        epochs=epochs,
        seconds=_seconds(status),
        params=hparams.get("model/params"),
        attention_bytes=hparams.get("model/attention_peak_bytes"),
        throughput=_throughput(folder),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def is_run(folder: Path) -> bool:
    """True for a run folder (as opposed to a sweep folder of numbered jobs)."""
    return (folder / ".hydra").is_dir() or (folder / "job.json").is_file()


def _job_key(folder: Path) -> tuple[int, str]:
    return (int(folder.name), "") if folder.name.isdigit() else (1 << 30, folder.name)


def collect(path: Path) -> list[Job]:
    """Every job of the sweep in ``path`` in job order; a run folder gives its one run."""
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder; pass a sweep folder such as outputs/multirun/<date>/<time>")
    if is_run(path) and not (path / "multirun.yaml").is_file():
        return [read_job(path)]
    folders = [p for p in path.iterdir() if p.is_dir() and is_run(p)]
    if not folders:
        raise ConfigError(f"{path} holds no jobs (folders with .hydra/ or job.json); is it a multirun folder?")
    return [read_job(p) for p in sorted(folders, key=_job_key)]


def confusion_matrix(folder: Path) -> tuple[list[str], list[list[float]]] | None:
    """The class names and counts (rows: true, columns: predicted) of ``confusion_matrix.csv``."""
    path = folder / "confusion_matrix.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return None
    return rows[0][1:], [[float(v) for v in row[1:]] for row in rows[1:]]


def attention_folder(folder: Path) -> Path | None:
    """The run's latest attention maps: ``attention/test`` when drawn, else the last epoch's."""
    root = folder / "attention"
    if (root / "test").is_dir():
        return root / "test"
    epochs = sorted(root.glob("epoch_*"))
    return epochs[-1] if epochs else None
