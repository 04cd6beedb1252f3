"""Reading a trained encoder's attention: rollout, token relevance, and the view seam.

Modality-free. The backbone's explicit path gives one ``(B, H, T', T')`` map per layer
(``T' = T + 1`` with a CLS token at index 0). From these:

- :func:`attention_rollout` follows attention through the layers, with the residual
  connection counted as identity (Abnar & Zuidema, "Quantifying Attention Flow in
  Transformers", ACL 2020): ``R = Â_L ⋯ Â_1`` with ``Â_l = ½ mean_h A_l + ½ I``, rows
  renormalised.
- :func:`token_relevance` reads, from the rollout, how much the prediction draws on each
  input token: the CLS row with a CLS token, the mean over real queries without one
  (mean pooling).
- :class:`ExampleAttention` is one example's maps over its real tokens, which is what a
  plugin's :class:`AttentionView` draws on that plugin's own inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from matplotlib.figure import Figure
from torch import Tensor

from attnlab.types import Batch


def attention_rollout(layers: Sequence[Tensor], key_mask: Tensor | None = None) -> Tensor:
    """Attention rollout through all layers, residual connections counted as identity.

    Args:
        layers: per layer, weights ``(B, H, T, T)`` (averaged over heads) or ``(B, T, T)``;
            rows are queries, columns keys, first layer first.
        key_mask: bool ``(B, T)``, True for real tokens (CLS included); None when all are.

    Returns:
        ``(B, T, T)``: row ``i`` says how much token ``i``'s output draws on each input
        token. Real rows sum to 1; padded rows and columns are 0.
    """
    if not layers:
        raise ValueError("attention rollout needs at least one layer of attention")
    rollout: Tensor | None = None
    for weights in layers:
        a = weights.float().mean(1) if weights.dim() == 4 else weights.float()  # (B, T, T)
        eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
        a = 0.5 * a + 0.5 * eye  # the residual stream carries the token itself
        a = a / a.sum(-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout  # (B, T, T)
    assert rollout is not None
    if key_mask is not None:
        real = key_mask[:, :, None] & key_mask[:, None, :]  # (B, T, T)
        rollout = rollout.masked_fill(~real, 0.0)
    return rollout


def token_relevance(rollout: Tensor, key_mask: Tensor, has_cls: bool) -> Tensor:
    """How much the sequence's prediction draws on each input token, from the rollout.

    Args:
        rollout: ``(B, T', T')`` from :func:`attention_rollout`.
        key_mask: bool ``(B, T')``, True for real tokens (CLS included).
        has_cls: index 0 is a CLS token, whose row is the prediction's.

    Returns:
        ``(B, T)`` over the input tokens (CLS dropped), summing to 1 over real tokens
        and 0 on padding. Without CLS, the mean of the real query rows (mean pooling).
    """
    if has_cls:
        row = rollout[:, 0, 1:]  # (B, T)
        real = key_mask[:, 1:]
    else:
        real = key_mask
        queries = real.to(rollout.dtype)  # (B, T)
        row = (queries[:, :, None] * rollout).sum(1) / queries.sum(1, keepdim=True)  # (B, T)
    row = row.masked_fill(~real, 0.0)
    return row / row.sum(-1, keepdim=True).clamp_min(torch.finfo(row.dtype).tiny)


def key_mask_of(pad_mask: Tensor, has_cls: bool) -> Tensor:
    """The backbone's key mask ``(B, T')``: ``pad_mask`` ``(B, T)`` with a real CLS in front."""
    if not has_cls:
        return pad_mask
    return torch.cat([pad_mask.new_ones(pad_mask.shape[0], 1), pad_mask], dim=1)  # (B, 1 + T)


@dataclass(frozen=True)
class ExampleAttention:
    """One example's attention over its real tokens, on the CPU.

    Attributes:
        weights: ``(L, H, N, N)`` per layer and head; ``N`` real tokens, CLS first when
            ``has_cls``.
        rollout: ``(N, N)`` attention rollout.
        relevance: ``(T,)`` over the real input tokens (no CLS), summing to 1.
        has_cls: whether token 0 of ``weights`` and ``rollout`` is the CLS token.
    """

    weights: Tensor
    rollout: Tensor
    relevance: Tensor
    has_cls: bool

    @property
    def input_rollout(self) -> Tensor:
        """``(T, T)`` rollout between input tokens (the CLS row and column dropped)."""
        skip = int(self.has_cls)
        return self.rollout[skip:, skip:]


def example_attention(maps: Sequence[Tensor], pad_mask: Tensor, has_cls: bool) -> list[ExampleAttention]:
    """Each example's :class:`ExampleAttention`, padding removed.

    Args:
        maps: per layer ``(B, H, T', T')`` (``Encoded.attention``).
        pad_mask: bool ``(B, T)``, True for real input tokens.
        has_cls: the backbone prepended a CLS token.
    """
    key_mask = key_mask_of(pad_mask, has_cls)  # (B, T')
    weights = torch.stack([m.detach().float() for m in maps], dim=1).cpu()  # (B, L, H, T', T')
    rollout = attention_rollout(maps, key_mask).cpu()  # (B, T', T')
    relevance = token_relevance(rollout, key_mask.cpu(), has_cls)  # (B, T)
    key_mask, pad_mask = key_mask.cpu(), pad_mask.cpu()
    out = []
    for b in range(len(key_mask)):
        real = key_mask[b]
        w = weights[b][:, :, real][:, :, :, real]  # (L, H, N, N)
        r = rollout[b][real][:, real]  # (N, N)
        out.append(ExampleAttention(weights=w, rollout=r, relevance=relevance[b][pad_mask[b]], has_cls=has_cls))
    return out


class AttentionView(Protocol):
    """How a modality shows attention on its own inputs; a plugin's config supplies one.

    The attention-maps callback draws heatmaps for every modality; a view adds names on
    their axes and a picture on the input. Either method may return None.
    """

    def labels(self, batch: Batch, index: int) -> list[str] | None:
        """Names of example ``index``'s real input tokens, in order (no CLS), or None."""
        ...

    def overlay(self, batch: Batch, index: int, attention: ExampleAttention) -> Figure | None:
        """Example ``index``'s attention drawn over its input (e.g. the relevance of each token)."""
        ...
