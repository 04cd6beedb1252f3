"""The shared self-attention backbone: a pre-norm Transformer encoder.

Reads top-down: MLP → DropPath → Block → Encoder. A block is
``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, the layout of
``nn.TransformerEncoderLayer(norm_first=True)``, whose weights map one to one onto ours.
Stochastic depth (``drop_path``) drops whole residual branches per example in training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Interval
from torch import Tensor, nn

from attnlab.backbone.attention import SelfAttention
from attnlab.backbone.positions import Position, Rotary, build_positions
from attnlab.errors import ConfigError
from attnlab.types import Encoded, Tokens

AttentionFactory = Callable[..., SelfAttention]
"""Builds one layer's attention from ``dim`` and ``heads`` (config: ``backbone.attention``)."""


class MLP(nn.Module):
    """Position-wise feed-forward: ``fc2(dropout(gelu(fc1(x))))``."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016, as in timm/DeiT): in training, a residual branch's
    output is zeroed for a random ``p`` share of the examples and scaled by ``1 / (1 - p)`` for
    the rest, so its expectation is unchanged; at evaluation it is the identity."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"a drop-path rate must be in [0, 1); got {p} (backbone.drop_path)")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # (B, 1, 1): one draw per example
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Block(nn.Module):
    """One pre-norm encoder layer; ``drop_path`` is this layer's stochastic-depth rate."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
        attention: AttentionFactory,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = attention(dim=dim, heads=heads)
        self.drop1 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)
        self.drop2 = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        x: Tensor,
        key_mask: Tensor | None,
        return_attention: bool = False,
        rotation: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        attended, weights = self.attn(self.norm1(x), key_mask, return_attention, rotation)
        x = x + self.drop_path(self.drop1(attended))
        x = x + self.drop_path(self.drop2(self.mlp(self.norm2(x))))
        return x, weights


class Encoder(nn.Module):
    """Positions, optional CLS token, ``depth`` blocks, final LayerNorm.

    With ``depth=0`` the encoder adds no positions and no CLS token: the tokens only go
    through the final norm, so a front-end plus a pooled head is a pure baseline (e.g. a
    CNN) measured on the same footing.

    Args:
        dim: token width ``D``.
        depth: number of blocks.
        heads: attention heads per block.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        dropout: dropout after attention, inside and after the MLP.
        attention: builds each block's attention from ``dim`` and ``heads``;
            defaults to :class:`SelfAttention` with no dropout.
        positions: ``sinusoidal``, ``learned``, ``rope`` (rotary: every block's attention
            rotates its queries and keys) or ``none``.
        max_len: longest sequence for ``learned`` positions.
        cls_token: prepend a learned CLS token, returned separately as ``Encoded.cls``.
        drop_path: stochastic depth of the last block; rates rise linearly from 0 at the
            first block (timm/DeiT), so ``depth=1`` drops nothing. 0 turns it off.
    """

    def __init__(
        self,
        dim: Annotated[int, Ge(1)],
        depth: Annotated[int, Ge(0)],
        heads: Annotated[int, Ge(1)],
        mlp_ratio: Annotated[float, Gt(0)] = 4.0,
        dropout: Annotated[float, Interval(ge=0, lt=1)] = 0.0,
        attention: AttentionFactory = SelfAttention,
        positions: Position = "sinusoidal",
        max_len: Annotated[int, Ge(1)] = 1024,
        cls_token: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 0:
            raise ConfigError(f"backbone.depth={depth} must be >= 0")
        if cls_token and depth == 0:
            raise ConfigError(
                "backbone.cls_token=true needs backbone.depth >= 1; use head.pooling=mean or auto for depth 0"
            )
        self.dim = dim
        self.depth = depth
        self.positions = build_positions(positions if depth > 0 else "none", dim, max_len)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        if self.cls is not None:
            nn.init.trunc_normal_(self.cls, std=0.02)
        if not 0.0 <= drop_path < 1.0:
            raise ConfigError(f"backbone.drop_path={drop_path} must be in [0, 1)")
        rates = torch.linspace(0.0, drop_path, depth).tolist() if depth > 1 else [0.0] * depth
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout, attention, rate) for rate in rates)
        self.norm = nn.LayerNorm(dim)
        self.rotary = Rotary(dim // heads) if positions == "rope" and depth > 0 else None

    @property
    def has_cls(self) -> bool:
        return self.cls is not None

    def no_weight_decay(self) -> list[nn.Parameter]:
        """The CLS token: weight decay would pull it towards zero for no gain
        (``attnlab.optim.param_groups`` skips it, as timm does)."""
        return [] if self.cls is None else [self.cls]

    def forward(self, tokens: Tokens, return_attention: bool = False) -> Encoded:
        x, pad_mask = tokens.x, tokens.pad_mask
        if x.shape[-1] != self.dim:
            raise ConfigError(
                f"the front-end produced tokens of width {x.shape[-1]} but backbone.dim={self.dim}; "
                "set the front-end's dim to ${backbone.dim}"
            )
        x = self.positions(x, tokens.positions)
        rotation = None if self.rotary is None else self._rotation(tokens, x.dtype)
        mask = pad_mask
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)  # (B, 1 + T, D)
            mask = torch.cat([pad_mask.new_ones(pad_mask.shape[0], 1), pad_mask], dim=1)  # (B, 1 + T)
        key_mask = None if bool(mask.all()) else mask
        maps: list[Tensor] = []
        for block in self.blocks:
            x, weights = block(x, key_mask, return_attention, rotation)
            if weights is not None:
                maps.append(weights)
        x = self.norm(x)
        cls = None
        if self.cls is not None:
            cls, x = x[:, 0], x[:, 1:]
        return Encoded(x=x, pad_mask=pad_mask, cls=cls, attention=maps if return_attention else None)

    def _rotation(self, tokens: Tokens, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Rotary ``cos``, ``sin`` ``(B or 1, 1, T', d)`` from ``Tokens.positions`` or the token
        index. A CLS token sits one step before the first token on every axis, so with 1-D
        positions it is index 0 of the ``1 + T`` sequence, and shifting every token's
        coordinates moves the CLS token with them."""
        coords = tokens.positions
        if coords is None:
            coords = torch.arange(tokens.x.shape[1], device=tokens.x.device)[:, None]  # (T, 1)
        if self.cls is not None:
            coords = torch.cat([coords[..., :1, :] - 1, coords], dim=-2)  # (…, 1 + T, A)
        return self.rotary(coords, dtype)  # (B or 1, 1, T', d)
