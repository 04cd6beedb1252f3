"""Task heads: what the model predicts from the encoded tokens.

A head owns its output layer, its loss and its metrics, so the LightningModule stays
task-agnostic. Each head declares the data task it fits (``task``); ``head=auto`` (the
default) is the head of the data's task, and an explicit ``head=`` that cannot fit the
data's task is refused (:mod:`attnlab.tasks`).

Each head declares the metrics it logs as ``metric_types`` (name -> torchmetrics class),
and ``metrics()`` builds exactly those: torchmetrics' ``higher_is_better`` then gives each
metric its direction (:mod:`attnlab.objective`) before any head is built. The first is
the head's main metric, the default ``optimized_metric`` (``val/<name>``).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_args

import torch
import torch.nn.functional as F
from annotated_types import Ge, Interval
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score
from torchmetrics.text import CharErrorRate

from attnlab.errors import ConfigError
from attnlab.types import IGNORE_INDEX, Batch, Encoded, Task

__all__ = ["IGNORE_INDEX", "CTCHead", "SequenceHead", "TokenHead", "ctc_greedy_decode"]

Pooling = Literal["auto", "cls", "mean", "attention"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
Dropout = Annotated[float, Interval(ge=0, lt=1)]
Smoothing = Annotated[float, Interval(ge=0, lt=1)]
Width = Annotated[int, Ge(1)]
Classes = Annotated[int, Ge(1)]

SOFT_TARGET = "soft_target"
"""Batch key of per-class target probabilities ``(B, C)`` (MixUp, CutMix): when present the
sequence head's loss uses them, while ``target`` keeps the hard labels the metrics read."""


def _check_smoothing(label_smoothing: float) -> float:
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"head.label_smoothing={label_smoothing} must be in [0, 1)")
    return label_smoothing


def _refuse_soft_target(batch: Batch, head: str) -> None:
    if SOFT_TARGET in batch:
        raise ConfigError(
            f"the batch has mixed soft targets (MixUp/CutMix), which head={head} cannot train on; use head=sequence"
        )


class SequenceHead(nn.Module):
    """One label per sequence from the CLS token or the mean of the real tokens.

    ``pooling=auto`` uses the CLS token when the backbone has one (``backbone.cls_token``)
    and the mean otherwise, so the head follows the backbone setting. ``pooling=attention``
    weights the real tokens by a softmax of their score against one learned query
    (attentive pooling), so a few informative tokens (a word inside a second of silence)
    are not averaged away by many uninformative ones.

    Args:
        dim: backbone width.
        num_classes: number of labels (from the data).
        pooling: ``auto``, ``cls`` (needs ``backbone.cls_token=true``), ``mean`` or ``attention``.
        dropout: dropout before the classifier.
        label_smoothing: share of each target's probability spread evenly over all classes
            (Szegedy et al. 2016; ``F.cross_entropy(label_smoothing=)``); 0 turns it off.
    """

    task: ClassVar[Task] = "sequence"
    metric_types: ClassVar[dict[str, type[Metric]]] = {"acc": MulticlassAccuracy}

    def __init__(
        self,
        dim: Width,
        num_classes: Classes,
        pooling: Pooling = "auto",
        dropout: Dropout = 0.0,
        label_smoothing: Smoothing = 0.0,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"head.pooling={pooling!r} is unknown; choose one of {', '.join(POOLINGS)}")
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.pooling = pooling
        self.num_classes = num_classes
        self.query = nn.Parameter(torch.zeros(dim)) if pooling == "attention" else None  # zeros: starts as the mean
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    @property
    def needs_cls(self) -> bool:
        return self.pooling == "cls"

    def forward(self, enc: Encoded) -> Tensor:
        """Logits ``(B, C)``."""
        if self.pooling == "cls" or (self.pooling == "auto" and enc.cls is not None):
            if enc.cls is None:
                raise ConfigError("head.pooling=cls needs backbone.cls_token=true; or set head.pooling=mean")
            pooled = enc.cls
        elif self.query is not None:
            scores = (enc.x @ self.query.to(enc.x.dtype)) / enc.x.shape[-1] ** 0.5  # (B, T)
            weights = scores.masked_fill(~enc.pad_mask, float("-inf")).softmax(dim=1)  # (B, T)
            pooled = torch.einsum("bt,btd->bd", weights, enc.x)  # (B, D)
        else:
            m = enc.pad_mask.unsqueeze(-1).to(enc.x.dtype)  # (B, T, 1)
            pooled = (enc.x * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D)
        return self.fc(self.drop(pooled))

    def loss(self, logits: Tensor, pad_mask: Tensor, batch: Batch) -> Tensor:
        """Cross-entropy against ``batch["soft_target"]`` ``(B, C)`` when the batch was mixed,
        else against the labels ``batch["target"]`` ``(B,)``; smoothed either way."""
        soft = batch.get(SOFT_TARGET)
        target = batch["target"] if soft is None else soft.to(logits.dtype)
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    def for_metrics(self, logits: Tensor, pad_mask: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Predictions and targets, aligned and flat, for the metrics."""
        return logits, batch["target"]

    def metrics(self) -> MetricCollection:
        return MetricCollection({"acc": MulticlassAccuracy(self.num_classes, average="micro")})

    def confusion(self) -> Metric:
        """The test-time confusion matrix, fed by :meth:`for_metrics`."""
        return MulticlassConfusionMatrix(self.num_classes)


class TokenHead(nn.Module):
    """One label per token; targets equal to ``IGNORE_INDEX`` (padding) are left out.

    Args:
        dim: backbone width.
        num_classes: number of token labels (from the data).
        dropout: dropout before the classifier.
        label_smoothing: as for :class:`SequenceHead`, per token.
    """

    task: ClassVar[Task] = "token"
    needs_cls = False
    metric_types: ClassVar[dict[str, type[Metric]]] = {"acc": MulticlassAccuracy, "f1": MulticlassF1Score}

    def __init__(
        self, dim: Width, num_classes: Classes, dropout: Dropout = 0.0, label_smoothing: Smoothing = 0.0
    ) -> None:
        super().__init__()
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.num_classes = num_classes
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, enc: Encoded) -> Tensor:
        """Logits ``(B, T, C)``."""
        return self.fc(self.drop(enc.x))

    def _aligned_target(self, logits: Tensor, batch: Batch) -> Tensor:
        target = batch["target"]
        if target.shape != logits.shape[:2]:
            raise ConfigError(
                f"head=token needs one label per token, but there are {tuple(target.shape)} labels "
                f"for {tuple(logits.shape[:2])} tokens; use a front-end that keeps the sequence length"
            )
        return target

    def loss(self, logits: Tensor, pad_mask: Tensor, batch: Batch) -> Tensor:
        _refuse_soft_target(batch, "token")
        target = self._aligned_target(logits, batch)
        return F.cross_entropy(
            logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing
        )

    def for_metrics(self, logits: Tensor, pad_mask: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        target = self._aligned_target(logits, batch).flatten()
        keep = target != IGNORE_INDEX
        return logits.flatten(0, 1)[keep], target[keep]

    def metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(self.num_classes, average="micro"),
                "f1": MulticlassF1Score(self.num_classes, average="macro"),
            }
        )

    def confusion(self) -> Metric:
        """The test-time confusion matrix over real tokens, fed by :meth:`for_metrics`."""
        return MulticlassConfusionMatrix(self.num_classes)


BLANK = 0
"""The CTC blank; label ``k`` of the data is output class ``k + 1``."""


def ctc_greedy_decode(logits: Tensor, lengths: Tensor) -> list[list[int]]:
    """Best path per sequence: argmax, merge repeats, drop blanks; labels back to ``0..C-1``."""
    best = logits.argmax(dim=-1).tolist()  # (B, T)
    out: list[list[int]] = []
    for path, n in zip(best, lengths.tolist()):
        labels, previous = [], BLANK
        for k in path[:n]:
            if k != previous and k != BLANK:
                labels.append(k - 1)
            previous = k
        out.append(labels)
    return out


def _as_text(labels: list[int]) -> str:
    # One character per label, so the character error rate is the label error rate.
    return "".join(chr(0x100 + k) for k in labels)


class CTCHead(nn.Module):
    """A label sequence per input sequence, trained with CTC and decoded greedily.

    The batch's ``target`` is ``(B, L)`` padded with ``IGNORE_INDEX`` and
    ``target_lengths`` is ``(B,)``. The metric is the character (label) error rate.

    Args:
        dim: backbone width.
        num_classes: number of labels, not counting the blank (from the data).
        dropout: dropout before the classifier.
    """

    task: ClassVar[Task] = "label_sequence"
    needs_cls = False
    metric_types: ClassVar[dict[str, type[Metric]]] = {"cer": CharErrorRate}

    def __init__(self, dim: Width, num_classes: Classes, dropout: Dropout = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes + 1)

    def forward(self, enc: Encoded) -> Tensor:
        """Logits ``(B, T, C + 1)``, class 0 the blank."""
        return self.fc(self.drop(enc.x))

    def loss(self, logits: Tensor, pad_mask: Tensor, batch: Batch) -> Tensor:
        _refuse_soft_target(batch, "ctc")
        target, target_lengths = batch["target"], batch["target_lengths"]
        log_probs = logits.float().log_softmax(dim=-1).transpose(0, 1)  # (T, B, C + 1)
        return F.ctc_loss(
            log_probs,
            (target + 1).clamp_min(0),  # labels 0..C-1 -> classes 1..C; padding is never read
            pad_mask.sum(dim=1),
            target_lengths,
            blank=BLANK,
            zero_infinity=True,
        )

    def for_metrics(self, logits: Tensor, pad_mask: Tensor, batch: Batch) -> tuple[list[str], list[str]]:
        hypotheses = ctc_greedy_decode(logits, pad_mask.sum(dim=1))
        references = [row[:n] for row, n in zip(batch["target"].tolist(), batch["target_lengths"].tolist())]
        return [_as_text(h) for h in hypotheses], [_as_text(r) for r in references]

    def metrics(self) -> MetricCollection:
        return MetricCollection({"cer": CharErrorRate()})

    def confusion(self) -> None:
        """Label sequences have no confusion matrix."""
        return None
