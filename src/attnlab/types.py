"""The contract between modality plugins and the shared backbone.

A plugin's front-end turns a batch into :class:`Tokens`; the backbone turns those into
:class:`Encoded`; a head turns that into predictions. Nothing else crosses the seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

Batch = dict[str, Any]
"""A collated batch: ``inputs`` (modality-specific), ``target``, optionally ``lengths``."""


def batch_size(batch: Batch) -> int:
    """The number of examples in ``batch`` (for throughput)."""
    return len(batch["target"])


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
