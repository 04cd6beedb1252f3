"""The typed seams of attnlab: what data gives the core, what a batch holds, what a head is.

Data flows ``DataModule → Batch → front-end → Tokens → backbone → Encoded → Head``:

- :class:`DataSpec`: what a dataset declares about itself (its :data:`Task`, its classes,
  the values configs read as ``${from_data:...}``).
- :class:`Batch`: a collated batch; its ``target``'s shape follows the task.
- :class:`Tokens`: a plugin's front-end output, the one contract with the backbone.
- :class:`Encoded`: the backbone's output, which a :class:`Head` turns into predictions.

The checks (:meth:`DataSpec.check`, :func:`check_batch`, :meth:`Tokens.check`) raise
``ValueError`` naming the first broken part; the contract checks turn that into one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypedDict, get_args

import torch
from torch import Tensor

if TYPE_CHECKING:
    from torchmetrics import Metric, MetricCollection

Task = Literal["sequence", "token", "label_sequence"]
"""What a dataset predicts: ``sequence`` one label per example, ``token`` one label per
token, ``label_sequence`` a sequence of labels per example (e.g. CTC)."""

TASKS: tuple[Task, ...] = get_args(Task)

IGNORE_INDEX = -100
"""Target value that padding carries (token labels, label sequences); heads leave it out."""

RESERVED = ("task", "num_classes", "class_names")
"""``${from_data:...}`` keys every dataset gives, from its :class:`DataSpec`."""


def _plain(value: Any) -> bool:
    """A value OmegaConf can carry as it is: a scalar, or a list of plain values."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(_plain(v) for v in value)


@dataclass(frozen=True)
class DataSpec:
    """What a dataset declares: its task, its classes, and the values the model takes from it.

    Attributes:
        task: what is predicted (:data:`Task`); the default head follows it.
        class_names: a name per class, in class order (confusion matrices use them).
        values: more values configs read as ``${from_data:<key>}``: scalars, strings and
            lists (e.g. ``in_channels``, ``sample_rate``, ``vocab_size``, feature names).
    """

    task: Task
    class_names: tuple[str, ...]
    values: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def info(self) -> dict[str, Any]:
        """Every ``${from_data:...}`` value: ``task``, ``num_classes``, ``class_names`` and :attr:`values`."""
        return {
            "task": self.task,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            **self.values,
        }

    def check(self) -> None:
        """Raise ``ValueError`` naming the first broken part of the spec."""
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        names = self.class_names
        if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError(f"class_names must be a non-empty tuple of strings; got {names!r}")
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"class_names must be distinct; {twice} appear more than once")
        for key, value in self.values.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"value names must be identifiers (read as ${{from_data:<name>}}); got {key!r}")
            if key in RESERVED:
                raise ValueError(f"value {key!r} is reserved: the spec gives it (task, class_names)")
            if not _plain(value):
                kind = type(value).__name__
                raise ValueError(f"value {key!r} must be a bool, int, float, str, None or a list of those, not {kind}")


class _BatchRequired(TypedDict):
    inputs: Any
    target: Tensor


class Batch(_BatchRequired, total=False):
    """A collated batch. Padding happens once, in the source's collate function.

    Keys:
        inputs: modality-specific (images ``(B, C, H, W)``, waveforms ``(B, S)``, ids ``(B, T)``).
        target: long; by task: ``sequence`` ``(B,)``; ``token`` ``(B, T)`` with
            ``IGNORE_INDEX`` on padding; ``label_sequence`` ``(B, L)`` padded with ``IGNORE_INDEX``.
        lengths: ``(B,)`` real length of each input, where inputs vary in length.
        target_lengths: ``(B,)`` labels per example (``label_sequence`` only).
        soft_target: ``(B, C)`` float class probabilities from a batch transform (MixUp,
            CutMix); the loss uses it when present, metrics always use the hard ``target``.
    """

    lengths: Tensor
    target_lengths: Tensor
    soft_target: Tensor


def batch_size(batch: Batch) -> int:
    """The number of examples in ``batch`` (for throughput)."""
    return len(batch["target"])


def _labels_in_range(values: Tensor, num_classes: int, what: str) -> None:
    bad = values[(values < 0) | (values >= num_classes)]
    if bad.numel():
        raise ValueError(f"{what} must be class ids 0..{num_classes - 1}; found {int(bad[0])}")


def check_batch(batch: Mapping[str, Any], spec: DataSpec) -> None:
    """Raise ``ValueError`` naming the first part of ``batch`` that does not fit ``spec``'s task."""
    missing = [k for k in ("inputs", "target") if k not in batch]
    if missing:
        raise ValueError(f"a batch is a dict with 'inputs' and 'target'; missing {missing} in {sorted(batch)}")
    target = batch["target"]
    if not isinstance(target, Tensor) or target.dtype != torch.long:
        got = target.dtype if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"target must be a long tensor; got {got}")
    b, c = len(target), spec.num_classes
    for key in ("lengths", "target_lengths"):
        value = batch.get(key)
        if value is not None and (
            not isinstance(value, Tensor) or tuple(value.shape) != (b,) or value.is_floating_point()
        ):
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{key} must be an integer tensor (B,) = ({b},); got {got}")
    if spec.task == "sequence":
        if target.dim() != 1:
            raise ValueError(f"task 'sequence' needs one label per example: target (B,); got {tuple(target.shape)}")
        _labels_in_range(target, c, "target")
    elif spec.task == "token":
        if target.dim() != 2:
            raise ValueError(f"task 'token' needs one label per token: target (B, T); got {tuple(target.shape)}")
        _labels_in_range(target[target != IGNORE_INDEX], c, "target (outside IGNORE_INDEX padding)")
    else:
        n = batch.get("target_lengths")
        if target.dim() != 2 or n is None:
            raise ValueError(
                f"task 'label_sequence' needs target (B, L) and target_lengths (B,); got target "
                f"{tuple(target.shape)} and {'no' if n is None else 'a'} target_lengths"
            )
        if bool((n < 0).any()) or bool((n > target.shape[1]).any()):
            raise ValueError(f"target_lengths must be 0..{target.shape[1]} (the target's width); got {n.tolist()}")
        real = torch.arange(target.shape[1])[None, :] < n[:, None].cpu()  # (B, L)
        _labels_in_range(target.cpu()[real], c, "target (within target_lengths)")
    soft = batch.get("soft_target")
    if soft is not None and (not isinstance(soft, Tensor) or tuple(soft.shape) != (b, c)):
        got = tuple(soft.shape) if isinstance(soft, Tensor) else type(soft).__name__
        raise ValueError(f"soft_target must be (B, C) = ({b}, {c}); got {got}")


@dataclass
class Tokens:
    """A batch of token sequences.

    Attributes:
        x: token features, float ``(B, T, D)``.
        pad_mask: bool ``(B, T)``, True for real tokens and False for padding.
        positions: optional coordinates ``(T, A)`` or ``(B, T, A)`` with ``A`` axes
            (e.g. ``A=2`` for an image grid's row and column). None means the 1-D
            token index.
    """

    x: Tensor
    pad_mask: Tensor
    positions: Tensor | None = None

    def check(self) -> None:
        """Raise ``ValueError`` naming the first broken part of the contract."""
        if self.x.dim() != 3 or not self.x.is_floating_point():
            raise ValueError(f"Tokens.x must be a float tensor (B, T, D); got {self.x.dtype} {tuple(self.x.shape)}")
        if self.pad_mask.dtype != torch.bool:
            raise ValueError(f"Tokens.pad_mask must be bool (True = real token); got {self.pad_mask.dtype}")
        if tuple(self.pad_mask.shape) != tuple(self.x.shape[:2]):
            raise ValueError(
                f"Tokens.pad_mask must be (B, T) = {tuple(self.x.shape[:2])}; got {tuple(self.pad_mask.shape)}"
            )
        if not bool(self.pad_mask.any(dim=1).all()):
            raise ValueError("every sequence needs at least one real token (a pad_mask row is all False)")
        if self.positions is not None:
            t = self.x.shape[1]
            shape = tuple(self.positions.shape)
            if self.positions.dim() not in (2, 3) or shape[-2] != t:
                raise ValueError(f"Tokens.positions must be (T, A) or (B, T, A) with T={t}; got {shape}")


@dataclass
class Encoded:
    """The backbone's output.

    Attributes:
        x: encoded tokens ``(B, T, D)``, aligned with the input tokens (no CLS).
        pad_mask: bool ``(B, T)``, as in the input.
        cls: the CLS token's encoding ``(B, D)``, when the backbone has one.
        attention: per layer, attention weights ``(B, H, T', T')`` when asked for;
            ``T' = T + 1`` with a CLS token (the CLS token is index 0).
    """

    x: Tensor
    pad_mask: Tensor
    cls: Tensor | None = None
    attention: list[Tensor] | None = None


class Head(Protocol):
    """What the LightningModule calls on a task head (``attnlab.heads``).

    Attributes:
        task: the data task the head fits; ``head`` defaults to the head of the data's task.
        needs_cls: the head reads ``Encoded.cls`` (the backbone must make a CLS token).
    """

    task: ClassVar[Task]
    needs_cls: bool

    def __call__(self, enc: Encoded) -> Tensor:
        """Logits: ``(B, C)`` for one label per example, ``(B, T, C')`` per token."""
        ...

    def loss(self, logits: Tensor, pad_mask: Tensor, batch: Batch) -> Tensor:
        """The training loss (a scalar)."""
        ...

    def for_metrics(self, logits: Tensor, pad_mask: Tensor, batch: Batch) -> tuple[Any, Any]:
        """Predictions and hard targets, aligned, for :meth:`metrics` and :meth:`confusion`."""
        ...

    def metrics(self) -> MetricCollection:
        """Fresh metrics (cloned per stage), each with its ``higher_is_better``."""
        ...

    def confusion(self) -> Metric | None:
        """A fresh test-time confusion matrix, or None where the task has none."""
        ...
