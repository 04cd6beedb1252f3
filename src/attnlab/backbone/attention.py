"""Multi-head self-attention, the one attention implementation of attnlab.

Variants (scoring function, local windows, ...) are arguments of :class:`SelfAttention`,
not copies of it. The normal path runs through
``torch.nn.functional.scaled_dot_product_attention`` so PyTorch picks its fused kernel;
the explicit path computes the same thing step by step and returns the weights.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

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
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, qkv_bias: bool = True) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ConfigError(
                f"backbone.dim={dim} is not divisible by backbone.heads={heads}; "
                f"choose heads from {_divisors(dim)} or change dim"
            )
        self.heads = heads
        self.head_dim = dim // heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

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
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T)
        p = self.dropout if self.training else 0.0
        weights = None
        if return_attention:
            scores = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, H, T, T)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            out = F.dropout(weights, p=p, training=self.training) @ v  # (B, H, T, d)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, T, d)
        out = out.transpose(1, 2).reshape(b, t, d)  # (B, T, D)
        return self.proj(out), weights
