"""Task heads: what the model predicts from the encoded tokens.

A head owns its output layer, its loss and its metrics, so the LightningModule stays
task-agnostic. Chosen by config (``head=sequence`` or ``head=token``), never by a plugin.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from attnlab.errors import ConfigError
from attnlab.types import Batch, Encoded

IGNORE_INDEX = -100
"""Target value that the token head leaves out of its loss and metrics (padding)."""

POOLINGS = ("auto", "cls", "mean")


class SequenceHead(nn.Module):
    """One label per sequence from the CLS token or the mean of the real tokens.

    ``pooling=auto`` uses the CLS token when the backbone has one (``backbone.cls_token``)
    and the mean otherwise, so the head follows the backbone setting.

    Args:
        dim: backbone width.
        num_classes: number of labels (from the data).
        pooling: ``auto``, ``cls`` (needs ``backbone.cls_token=true``) or ``mean``.
        dropout: dropout before the classifier.
    """

    def __init__(self, dim: int, num_classes: int, pooling: str = "auto", dropout: float = 0.0) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"head.pooling={pooling!r} is unknown; choose one of {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.num_classes = num_classes
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
        else:
            m = enc.pad_mask.unsqueeze(-1).to(enc.x.dtype)  # (B, T, 1)
            pooled = (enc.x * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D)
        return self.fc(self.drop(pooled))

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits, batch["target"])

    def for_metrics(self, logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """Predictions and targets, aligned and flat, for the metrics."""
        return logits, batch["target"]

    def metrics(self) -> MetricCollection:
        return MetricCollection({"acc": MulticlassAccuracy(self.num_classes, average="micro")})


class TokenHead(nn.Module):
    """One label per token; targets equal to ``IGNORE_INDEX`` (padding) are left out.

    Args:
        dim: backbone width.
        num_classes: number of token labels (from the data).
        dropout: dropout before the classifier.
    """

    needs_cls = False

    def __init__(self, dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
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

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        target = self._aligned_target(logits, batch)
        return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE_INDEX)

    def for_metrics(self, logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
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
