"""The one metric a run optimises, and its direction, declared once.

A run optimises ``optimized_metric`` (``val/acc``, ``val/loss``, ``val/cer``, ...). Its
direction is not typed anywhere: each head declares the metrics it logs as torchmetrics
classes (``metric_types``), and torchmetrics' own ``higher_is_better`` says which way is
better (accuracy and F1 up, error rates down); the loss is always lower-is-better.
Everything that ranks reads the :class:`Objective`: checkpoint selection and early
stopping (``monitor: ${objective:metric}``, ``mode: ${objective:mode}``), Optuna
(``direction: ${objective:direction}``), the value a sweep gets back (the best value in
direction), ``attnlab-report``'s order, and the run's ``job.json``.

The direction is read from the head's class, not from a built head, so it is known
before any data is prepared (Optuna needs it before its first trial).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hydra.utils import get_class
from omegaconf import DictConfig

from attnlab.errors import ConfigError

Mode = Literal["min", "max"]

LOSS = "loss"
"""Every head logs ``<stage>/loss``; lower is better."""

FIT_STAGES = ("val", "train")
"""Stages whose metrics exist while fitting, so checkpoints and early stopping can rank by them."""

ALL_STAGES = (*FIT_STAGES, "test")


@dataclass(frozen=True)
class Objective:
    """A metric and the direction in which it gets better.

    Attributes:
        metric: the logged name, e.g. ``val/acc``.
        mode: ``max`` (higher is better) or ``min``, as Lightning's callbacks take it.
    """

    metric: str
    mode: Mode

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        """The mode as Optuna names it."""
        return "maximize" if self.mode == "max" else "minimize"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` (NaN is never better)."""
        if math.isnan(a):
            return False
        return math.isnan(b) or (a > b if self.mode == "max" else a < b)

    def best(self, values: Iterable[float]) -> float | None:
        """The best of ``values`` in this direction; None when there is no number."""
        found: float | None = None
        for value in values:
            if not math.isnan(value) and (found is None or self.better(value, found)):
                found = value
        return found

    def rank_key(self, value: float | None) -> tuple[int, float]:
        """Sort key putting the best value first and missing or NaN values last."""
        if value is None or math.isnan(value):
            return (1, 0.0)
        return (0, -value if self.mode == "max" else value)

    def as_record(self) -> dict[str, str]:
        """What ``job.json`` stores under ``objective``."""
        return {"metric": self.metric, "mode": self.mode}


def metric_modes(head: type) -> dict[str, Mode]:
    """The mode of each metric name a head class logs (without the stage prefix), ``loss`` included."""
    declared = getattr(head, "metric_types", None)
    if not isinstance(declared, Mapping):
        raise ConfigError(
            f"head {head.__module__}.{head.__qualname__} declares no metric_types "
            "(name -> torchmetrics class), so no metric of it can be optimised"
        )
    modes: dict[str, Mode] = {LOSS: "min"}
    for name, metric in declared.items():
        higher = getattr(metric, "higher_is_better", None)
        if higher is None:
            raise ConfigError(f"metric {name!r} of head {head.__qualname__} ({metric.__name__}) has no direction")
        modes[name] = "max" if higher else "min"
    return modes


def known_metrics(head: type, stages: Iterable[str] = FIT_STAGES) -> dict[str, Mode]:
    """Every ``<stage>/<name>`` the head logs in ``stages``, with its mode; validation first."""
    modes = metric_modes(head)
    return {f"{stage}/{name}": mode for stage in stages for name, mode in sorted(modes.items())}


def resolve(
    metric: str, head: type, stages: Iterable[str] = FIT_STAGES, setting: str = "optimized_metric"
) -> Objective:
    """The :class:`Objective` for ``metric`` under ``head``, or a one-line error listing the known names.

    Args:
        metric: a logged name, ``<stage>/<name>``.
        head: the head class whose ``metric_types`` declare the names and directions.
        stages: the stages ``metric`` may come from (fitting: ``val`` and ``train``).
        setting: how the user gave ``metric``, for the error message.
    """
    known = known_metrics(head, stages)
    if metric not in known:
        raise ConfigError(f"{setting}={metric} is not logged by head {head.__qualname__}; known: {', '.join(known)}")
    return Objective(metric, known[metric])


class TaskUnknown(ConfigError):
    """``head=auto`` follows data whose task is known only once the data is read."""


def head_class(cfg: Mapping[str, Any]) -> type:
    """The head's class from ``head._target_``; no head is built and no data is read.

    With ``head=auto`` it is the head of the task the data's source declares (``predicts``).

    Raises:
        TaskUnknown: ``head=auto`` and the source can say its task only once it is read.
    """
    from attnlab import tasks

    target = (cfg.get("head") or {}).get("_target_")
    if not isinstance(target, str):
        raise ConfigError("the run has no head (head._target_); choose one with head=<name>")
    if target == tasks.AUTO:
        task = tasks.declared_task(cfg if isinstance(cfg, DictConfig) else DictConfig(dict(cfg)))
        if task is None:
            raise TaskUnknown(
                "the head follows the data (head=auto), whose task is known only once it is read; "
                "choose the head (head=sequence, token or ctc)"
            )
        target = tasks.head_target(task)
    try:
        return get_class(target)
    except Exception as exc:
        raise ConfigError(f"head._target_={target} cannot be imported ({exc})") from exc


def head_metric(head: type) -> str:
    """The head's main metric on validation: its first declared one (``val/acc``, ``val/cer``).

    ``optimized_metric`` defaults to it (``${objective:head_metric}``), so a run whose head
    follows the data needs no metric typed.
    """
    names = [name for name in metric_modes(head) if name != LOSS]
    return f"val/{names[0] if names else LOSS}"


def of_config(cfg: Mapping[str, Any]) -> Objective:
    """The run's :class:`Objective`: ``optimized_metric`` under the configured head."""
    metric = cfg.get("optimized_metric")
    if not isinstance(metric, str):
        raise ConfigError("optimized_metric is not set; e.g. optimized_metric=val/acc")
    return resolve(metric, head_class(cfg))


FIELDS = ("metric", "mode", "direction", "head_metric")


def resolver(field: str, *, _root_: DictConfig) -> str:
    """``${objective:<field>}`` of the whole config, one of :data:`FIELDS`.

    ``metric``, ``mode`` and ``direction`` (Optuna's word for the mode) are the run's
    objective; ``head_metric`` is the head's main metric, the default ``optimized_metric``.
    """
    if field not in FIELDS:
        raise ConfigError(f"${{objective:{field}}}: choose one of {', '.join(FIELDS)}")
    if field == "head_metric":
        return head_metric(head_class(_root_))
    objective = of_config(_root_)
    return {"metric": objective.metric, "mode": objective.mode, "direction": objective.direction}[field]
