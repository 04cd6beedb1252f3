"""Multi-head self-attention, the one attention implementation of attnlab.

Variants (scoring function, local windows, ...) are arguments of :class:`SelfAttention`,
not copies of it. The normal path runs through
``torch.nn.functional.scaled_dot_product_attention`` so PyTorch picks its fused kernel;
the explicit path computes the same thing step by step and returns the weights.
Truncated attention (``window``, ``left``, ``right``) runs blockwise through
:func:`attnlab.backbone.local.local_attention`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.backbone.local import band_mask, local_attention, window_sides
from attnlab.errors import ConfigError


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention with a fused QKV projection.

    The parameter layout (``qkv`` holding query, key, value rows in that order, then
    ``proj``) matches ``nn.MultiheadAttention``'s ``in_proj``/``out_proj``.

    Args:
        dim: model width ``D``.
        heads: number of heads ``H``; ``D`` must be divisible by ``H``.
        dropout: dropout on the attention weights (training only).
        qkv_bias: whether the QKV projection has a bias.
        window: truncated attention, the same number of frames on both sides; None (and
            ``left``/``right`` None) for full attention.
        left: frames of context before each query (with ``right``): a query at ``i`` sees
            keys ``i - left <= j <= i + right``, computed blockwise in O(T·w).
        right: frames of context after each query (with ``left``).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float = 0.0,
        qkv_bias: bool = True,
        window: int | None = None,
        left: int | None = None,
        right: int | None = None,
    ) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ConfigError(
                f"backbone.dim={dim} is not divisible by backbone.heads={heads}; "
                f"choose heads from {_divisors(dim)} or change dim"
            )
        self.heads = heads
        self.head_dim = dim // heads
        self.dropout = dropout
        self.sides = window_sides(window, left, right)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def extra_repr(self) -> str:
        window = "full" if self.sides is None else f"left={self.sides[0]}, right={self.sides[1]}"
        return f"heads={self.heads}, dropout={self.dropout}, window={window}"

    def _window(self, t: int) -> tuple[int, int] | None:
        """The window for ``t`` tokens, or None when attention is full (a window covering
        the whole sequence takes the full path)."""
        if self.sides is None or min(self.sides) >= t - 1:
            return None
        return self.sides

    def forward(
        self, x: Tensor, key_mask: Tensor | None = None, return_attention: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Attend over ``x`` ``(B, T, D)``.

        Args:
            x: token features.
            key_mask: bool ``(B, T)``, True for keys that may be attended to; None
                when every token is real (the fast path).
            return_attention: also return the weights ``(B, H, T, T)``.

        Returns:
            The attended features ``(B, T, D)`` and the weights or None.
        """
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim)  # (B, T, 3, H, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, T, d)
        p = self.dropout if self.training else 0.0
        window = self._window(t)
        weights = None
        if return_attention:
            out, weights = self._explicit(q, k, v, key_mask, window, p)
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
        """Step-by-step attention that keeps the weights ``(B, H, T, T)``; O(T²), for maps."""
        t = q.shape[2]
        if window is not None:
            mask = band_mask(t, *window, key_mask, q.device)  # (B or 1, 1, T, T)
        else:
            mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T)
        scores = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, H, T, T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        out = F.dropout(weights, p=p, training=self.training) @ v  # (B, H, T, d)
        return out, weights
