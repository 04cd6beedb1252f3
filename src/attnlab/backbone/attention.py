"""Multi-head self-attention, the one attention implementation of attnlab.

Variants are arguments of :class:`SelfAttention`, not copies of it:

- ``score``: how a query and a key make a score. ``scaled_dot`` ``q·k / sqrt(d)`` (the
  default), ``dot`` ``q·k``, ``additive`` (Bahdanau) ``vᵀ tanh(W_q q + W_k k)`` and
  ``bilinear`` (Luong's "general") ``qᵀ W k``, each with its own weights per head.
- ``normalize``: scores to weights. ``softmax`` (the default) or ``relu``:
  ``relu(s_j) / Σ relu(s)``, a row with no positive score attends to nothing (zeros).
- ``topk``: keep the ``k`` highest scores of each query and normalise over those
  (``k=1`` is hard attention).
- ``window`` / ``left`` / ``right``: truncated attention (see :mod:`attnlab.backbone.local`).
- rotary positions: the encoder passes the rotation of each token to ``forward``; queries
  and keys are rotated before any scoring.

The default (``scaled_dot``, ``softmax``, no top-k) runs through
``torch.nn.functional.scaled_dot_product_attention`` (full) or the blockwise
:func:`attnlab.backbone.local.local_attention` (window), so PyTorch picks its fused
kernels. Every other variant, and any call asking for the weights, takes one explicit
path: scores → mask → top-k → normalise → dropout → weights @ values, which holds the
``(B, H, T, T)`` weights (a window there is a dense band mask). ``additive`` scores go in
query chunks, recomputed in the backward, so its ``T x T x d`` intermediate never exists
whole.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import torch
import torch.nn.functional as F
from annotated_types import Ge, Interval
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from attnlab.backbone.local import band_mask, local_attention, window_sides
from attnlab.backbone.positions import rotate
from attnlab.errors import ConfigError

Score = Literal["scaled_dot", "dot", "additive", "bilinear"]
Normalize = Literal["softmax", "relu"]
SCORES: tuple[str, ...] = get_args(Score)
NORMALIZE: tuple[str, ...] = get_args(Normalize)

ADDITIVE_CHUNK = 2**22
"""About how many elements the ``(B, H, n, T, d)`` tanh intermediate of one query chunk of
``additive`` scoring holds (16 MiB in float32); the chunk size ``n`` follows from it."""


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"backbone.attention.{key}={value!r} is unknown; choose one of {', '.join(choices)}")


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection; its variants are arguments.

    The parameter layout (``qkv`` holding query, key, value rows in that order, then
    ``proj``) matches ``nn.MultiheadAttention``'s ``in_proj``/``out_proj``. ``bilinear``
    adds ``bilinear`` ``(H, d, d)``; ``additive`` adds ``additive_q``, ``additive_k``
    ``(H, d, d)`` and ``additive_v`` ``(H, d)``: only the chosen score's weights exist.

    Args:
        dim: model width ``D``.
        heads: number of heads ``H``; ``D`` must be divisible by ``H``.
        dropout: dropout on the attention weights (training only).
        qkv_bias: whether the QKV projection has a bias.
        window: truncated attention, the same number of frames on both sides; None (and
            ``left``/``right`` None) for full attention.
        left: frames of context before each query (with ``right``): a query at ``i`` sees
            keys ``i - left <= j <= i + right``.
        right: frames of context after each query (with ``left``).
        score: one of :data:`SCORES`.
        normalize: one of :data:`NORMALIZE`.
        topk: keep only the ``topk`` highest scores of each query; None keeps all.
    """

    def __init__(
        self,
        dim: Annotated[int, Ge(1)],
        heads: Annotated[int, Ge(1)],
        dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.0,
        qkv_bias: bool = True,
        window: Annotated[int, Ge(1)] | None = None,
        left: Annotated[int, Ge(0)] | None = None,
        right: Annotated[int, Ge(0)] | None = None,
        score: Score = "scaled_dot",
        normalize: Normalize = "softmax",
        topk: Annotated[int, Ge(1)] | None = None,
    ) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ConfigError(
                f"backbone.dim={dim} is not divisible by backbone.heads={heads}; "
                f"choose heads from {_divisors(dim)} or change dim"
            )
        _check_choice("score", score, SCORES)
        _check_choice("normalize", normalize, NORMALIZE)
        if topk is not None and (isinstance(topk, bool) or not isinstance(topk, int) or topk < 1):
            raise ConfigError(
                f"backbone.attention.topk={topk!r} must be a whole number >= 1 (1 is hard attention) "
                "or null for all keys"
            )
        self.heads = heads
        self.head_dim = dim // heads
        self.dropout = dropout
        self.sides = window_sides(window, left, right)
        self.score = score
        self.normalize = normalize
        self.topk = topk
        self.fused = score == "scaled_dot" and normalize == "softmax" and topk is None
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        d = self.head_dim
        if score == "bilinear":  # starts as scaled_dot: W = I / sqrt(d), plus noise
            init = torch.eye(d) * d**-0.5 + torch.randn(heads, d, d) * 0.02
            self.bilinear = nn.Parameter(init)  # (H, d, d)
        if score == "additive":
            self.additive_q = nn.Parameter(torch.randn(heads, d, d) * d**-0.5)  # (H, d, d)
            self.additive_k = nn.Parameter(torch.randn(heads, d, d) * d**-0.5)  # (H, d, d)
            self.additive_v = nn.Parameter(torch.randn(heads, d) * d**-0.5)  # (H, d)

    def extra_repr(self) -> str:
        window = "full" if self.sides is None else f"left={self.sides[0]}, right={self.sides[1]}"
        return (
            f"heads={self.heads}, dropout={self.dropout}, window={window}, score={self.score}, "
            f"normalize={self.normalize}, topk={self.topk}"
        )

    def _window(self, t: int) -> tuple[int, int] | None:
        """The window for ``t`` tokens, or None when attention is full (a window covering
        the whole sequence takes the full path)."""
        if self.sides is None or min(self.sides) >= t - 1:
            return None
        return self.sides

    def forward(
        self,
        x: Tensor,
        key_mask: Tensor | None = None,
        return_attention: bool = False,
        rotation: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend over ``x`` ``(B, T, D)``.

        Args:
            x: token features.
            key_mask: bool ``(B, T)``, True for keys that may be attended to; None
                when every token is real (the fast path).
            return_attention: also return the weights ``(B, H, T, T)``.
            rotation: rotary positions, ``cos`` and ``sin`` ``(B or 1, 1, T, d)``
                (:class:`attnlab.backbone.positions.Rotary`); None for no rotation.

        Returns:
            The attended features ``(B, T, D)`` and the weights or None.
        """
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim)  # (B, T, 3, H, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, T, d)
        if rotation is not None:
            q, k = rotate(q, *rotation), rotate(k, *rotation)  # (B, H, T, d)
        p = self.dropout if self.training else 0.0
        window = self._window(t)
        weights = None
        if return_attention or not self.fused:
            out, weights = self._explicit(q, k, v, key_mask, window, p)
            weights = weights if return_attention else None
        elif window is not None:
            out = local_attention(q, k, v, *window, key_mask=key_mask, dropout_p=p)  # (B, H, T, d)
        else:
            mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, T, d)
        out = out.transpose(1, 2).reshape(b, t, d)  # (B, T, D)
        return self.proj(out), weights

    def _explicit(
        self, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, window: tuple[int, int] | None, p: float
    ) -> tuple[Tensor, Tensor]:
        """Step-by-step attention that keeps the weights ``(B, H, T, T)``; O(T²).

        ``additive`` goes in query chunks, each recomputed in the backward (activation
        checkpointing), so only one chunk's ``(B, H, n, T, d)`` intermediate is alive.
        """
        t = q.shape[2]
        if window is not None:
            mask = band_mask(t, *window, key_mask, q.device)  # (B or 1, 1, T, T)
        else:
            mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T)
        if self.score != "additive":
            return self._attend_rows(q, k, v, mask, p)
        b, h, _, d = q.shape
        qa = torch.einsum("bhtd,hde->bhte", q, self.additive_q)  # (B, H, T, d)
        ka = torch.einsum("bhtd,hde->bhte", k, self.additive_k)  # (B, H, T, d)
        rows = max(1, ADDITIVE_CHUNK // (b * h * t * d))
        outs, maps = [], []
        for r0 in range(0, t, rows):
            rows_mask = mask if mask is None or mask.shape[2] == 1 else mask[:, :, r0 : r0 + rows]
            args = (qa[:, :, r0 : r0 + rows], ka, v, rows_mask, p)
            if torch.is_grad_enabled():
                out, w = checkpoint(self._attend_rows, *args, use_reentrant=False)
            else:
                out, w = self._attend_rows(*args)
            outs.append(out)
            maps.append(w)
        return torch.cat(outs, dim=2), torch.cat(maps, dim=2)  # (B, H, T, d), (B, H, T, T)

    def _scores(self, q: Tensor, k: Tensor) -> Tensor:
        """Scores ``(B, H, n, T)`` of the queries ``q`` ``(B, H, n, d)`` against the keys
        ``k`` ``(B, H, T, d)``. For ``additive``, ``q`` and ``k`` are already ``W_q q`` and
        ``W_k k``."""
        if self.score == "scaled_dot":
            return (q @ k.transpose(-2, -1)) * self.head_dim**-0.5
        if self.score == "dot":
            return q @ k.transpose(-2, -1)
        if self.score == "bilinear":
            return torch.einsum("bhnd,hde->bhne", q, self.bilinear) @ k.transpose(-2, -1)
        hidden = torch.tanh(q[:, :, :, None, :] + k[:, :, None, :, :])  # (B, H, n, T, d)
        return torch.einsum("bhnte,he->bhnt", hidden, self.additive_v)

    def _attend_rows(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float) -> tuple[Tensor, Tensor]:
        """Scores → mask → top-k → normalise → dropout → values, for a block of query rows.

        Args:
            q: queries ``(B, H, n, d)``; ``k``, ``v``: all keys and values ``(B, H, T, d)``.
            mask: bool, True where a query may see a key, broadcastable to ``(B, H, n, T)``;
                every row allows at least one key (a padded query sees itself).
            p: dropout on the weights.

        Returns:
            The attended values ``(B, H, n, d)`` and the weights ``(B, H, n, T)``.
        """
        scores = self._scores(q, k)  # (B, H, n, T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        if self.topk is not None and self.topk < scores.shape[-1]:
            top = scores.topk(self.topk, dim=-1).indices  # (B, H, n, k)
            keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top, True)  # exactly k per row
            scores = scores.masked_fill(~keep, float("-inf"))
        if self.normalize == "softmax":
            weights = scores.softmax(dim=-1)
        else:  # relu: -inf (masked) becomes 0; a row with no positive score stays all zero
            positive = scores.relu()
            weights = positive / positive.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
        out = F.dropout(weights, p=p, training=self.training) @ v  # (B, H, n, d)
        return out, weights
