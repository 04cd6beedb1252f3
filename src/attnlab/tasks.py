"""The head follows the data: ``head=auto`` becomes the head of the data's task.

A dataset declares its task (:data:`attnlab.types.Task`); each head class declares the
task it fits (``Head.task``). When the data is set up, :func:`resolve_head` replaces a
``head: auto`` node by the config of the task's head (``conf/head/<name>.yaml``, with any
``head.*`` keys the user set), so the run's ``config.yaml`` and checkpoints name the head
that was used. An explicit head that cannot fit the task is a one-line error naming the
head that would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from annotated_types import Interval
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from attnlab.errors import ConfigError
from attnlab.types import TASKS, Task


def follow_the_data(
    dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.0,
    pooling: Literal["auto", "cls", "mean", "attention"] = "auto",
    label_smoothing: Annotated[float, Interval(ge=0, lt=1)] = 0.0,
) -> NoReturn:
    """``head=auto`` (``conf/head/auto.yaml``): the head of the data's task, never built itself.

    :func:`resolve_head` replaces it when the data is set up. Its arguments are the settings
    the task's head takes over (``pooling`` only for ``head=sequence``); being a real
    signature, they are checked with every other value before the run starts (the chosen
    head checks them again, and refuses one it has no use for once it is set).
    """
    raise ConfigError("head=auto is resolved to the data's head when the data is set up (attnlab.build)")


AUTO = f"{__name__}.{follow_the_data.__name__}"
"""``head._target_`` of ``conf/head/auto.yaml``: resolved here, never instantiated."""

HEAD_OF_TASK: dict[Task, str] = {"sequence": "sequence", "token": "token", "label_sequence": "ctc"}
"""The ``head=`` config each task needs."""

DESCRIBE: dict[Task, str] = {
    "sequence": "one label per example",
    "token": "one label per token",
    "label_sequence": "a label sequence per example",
}


def _config_dir() -> Path:
    from attnlab.config import config_dir

    return config_dir()


def _head_file(task: Task) -> DictConfig:
    node = OmegaConf.load(_config_dir() / "head" / f"{HEAD_OF_TASK[task]}.yaml")
    assert isinstance(node, DictConfig)
    return node


def head_task(target: str) -> Task:
    """The task the head class ``target`` declares.

    Raises:
        ConfigError: the class cannot be imported or declares no task.
    """
    try:
        cls = get_class(target)
    except Exception as exc:  # Hydra wraps ImportError and AttributeError
        raise ConfigError(f"head._target_={target} cannot be imported: {exc}") from None
    task = getattr(cls, "task", None)  # Head.task, a ClassVar of the protocol
    if task not in TASKS:
        raise ConfigError(f"head class {target} must declare `task` (one of {', '.join(TASKS)}); got {task!r}")
    return task


def _name(target: str) -> str:
    """``head=<name>`` of a built-in head class, else the class path."""
    for task, name in HEAD_OF_TASK.items():
        if _head_file(task).get("_target_") == target:
            return f"head={name}"
    return f"head._target_={target}"


def declared_task(cfg: DictConfig) -> Task | None:
    """The data's task as its source declares it before reading anything (``predicts``), or None.

    The source is built (a small settings object: nothing is read) when its class alone
    cannot say, e.g. ListOps, whose task follows ``labels``.
    """
    from hydra.utils import instantiate

    from attnlab.data.source import DeclaresTask

    node = OmegaConf.select(cfg, "data.source", default=None)
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if not isinstance(target, str):
        return None
    try:
        cls = get_class(target)
    except Exception:  # instantiating the data says what is wrong, in its own words
        return None
    declared = getattr(cls, "predicts", None)
    if isinstance(declared, str):
        return declared if declared in TASKS else None
    if declared is None:
        return None
    source = instantiate(node)
    task = source.predicts if isinstance(source, DeclaresTask) else None
    return task if task in TASKS else None


def head_target(task: Task) -> str:
    """The ``_target_`` of the head that ``task`` needs (``conf/head/<name>.yaml``)."""
    return str(_head_file(task)["_target_"])


def resolve_head(cfg: DictConfig, task: Task, data: str = "the data") -> None:
    """In place: ``head: auto`` becomes the head of ``task``; an explicit head must fit ``task``.

    Args:
        cfg: the run's config (its ``head`` node is read and may be replaced).
        task: the data's task.
        data: how to name the data in messages.

    Raises:
        ConfigError: the head cannot fit the task, naming the one that would; or a
            ``head.*`` key the task's head does not take.
    """
    node = cfg.get("head")
    if node is None:
        return
    target = str(node.get("_target_"))
    if target != AUTO:
        fits = head_task(target)
        if fits != task:
            raise ConfigError(
                f"{_name(target)} predicts {DESCRIBE[fits]}, but {data} has {DESCRIBE[task]} (task {task!r}); "
                f"use head={HEAD_OF_TASK[task]}, or leave head out: it follows the data"
            )
        return
    chosen = _head_file(task)
    settings: dict[str, Any] = OmegaConf.to_container(node, resolve=False)  # type: ignore[assignment]
    settings.pop("_target_")
    defaults = OmegaConf.to_container(OmegaConf.load(_config_dir() / "head" / "auto.yaml"))
    for key in set(settings) - set(chosen):
        if key in defaults and settings[key] == defaults[key]:  # a default of another head, untouched
            del settings[key]
    unknown = sorted(set(settings) - set(chosen))
    if unknown:
        raise ConfigError(
            f"head.{unknown[0]} is not a setting of head={HEAD_OF_TASK[task]}, the head of {data} "
            f"({DESCRIBE[task]}); its settings: {', '.join(k for k in chosen if k != '_target_')}"
        )
    with open_dict(cfg):
        cfg.head = OmegaConf.merge(chosen, settings)
