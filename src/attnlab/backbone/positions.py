"""Positional encodings, chosen with ``backbone.positions``.

- ``sinusoidal``: fixed sin-cos features of the token coordinates. With 1-D positions
  (the token index) this is the Transformer's encoding; with 2-D grid coordinates
  (``Tokens.positions`` of shape ``(T, 2)``) each axis gets half the channels, as in
  MAE/ViT-style 2-D sin-cos.
- ``learned``: a trained table indexed by token index, up to ``max_len`` tokens.
- ``rope``: rotary positions (Su et al., RoFormer): nothing is added to the tokens;
  instead every attention layer rotates its queries and keys by angles proportional to the
  token's coordinates (:class:`Rotary`), so a score depends on positions only through their
  difference. With 2-D coordinates each axis rotates its own share of a head's channels
  (axial RoPE).
- ``none``: nothing is added; attention is then permutation-equivariant.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from attnlab.errors import ConfigError


def sincos(coords: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Sin-cos features of coordinates ``(…, T, A) -> (…, T, dim)``.

    Each of the ``A`` axes gets ``dim // A`` channels: the first half ``sin(p * w_i)``,
    the second half ``cos(p * w_i)``, with ``w_i = base ** (-2 i / (dim // A))``.
    """
    axes = coords.shape[-1]
    per_axis = dim // axes
    if dim % axes or per_axis % 2:
        raise ConfigError(
            f"backbone.dim={dim} must be divisible by {2 * axes} for sinusoidal positions over {axes} axes; "
            "change dim or use backbone.positions=learned"
        )
    half = per_axis // 2
    freqs = torch.exp(-math.log(base) * torch.arange(half, device=coords.device, dtype=torch.float32) * 2 / per_axis)
    angles = coords.float().unsqueeze(-1) * freqs  # (…, T, A, half)
    feats = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (…, T, A, per_axis)
    return feats.flatten(-2)  # (…, T, dim)


class SinusoidalPositions(nn.Module):
    """Fixed sin-cos encoding of ``Tokens.positions`` (or of the token index)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        if dim % 2:
            raise ConfigError(f"backbone.dim={dim} must be even for sinusoidal positions; change dim")

    def forward(self, x: Tensor, positions: Tensor | None) -> Tensor:
        if positions is None:
            positions = torch.arange(x.shape[1], device=x.device)[:, None]  # (T, 1)
        return x + sincos(positions, self.dim).to(x.dtype)


class LearnedPositions(nn.Module):
    """A learned embedding per token index (ViT-style), for up to ``max_len`` tokens."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, x: Tensor, positions: Tensor | None) -> Tensor:
        t = x.shape[1]
        if t > self.table.shape[0]:
            raise ConfigError(
                f"a sequence of {t} tokens is longer than backbone.max_len={self.table.shape[0]}; "
                f"raise backbone.max_len to at least {t}"
            )
        return x + self.table[:t]

    def no_weight_decay(self) -> list[nn.Parameter]:
        """The table: weight decay is not applied to it (``attnlab.optim.param_groups``)."""
        return [self.table]


class NoPositions(nn.Module):
    """Adds nothing."""

    def forward(self, x: Tensor, positions: Tensor | None) -> Tensor:
        return x


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs ``(i, i + d/2)`` of ``x`` ``(…, T, d)`` by the angles whose
    ``cos`` and ``sin`` (broadcastable to ``x``) :meth:`Rotary.forward` gives."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


class Rotary(nn.Module):
    """Rotary position angles for heads of ``head_dim`` channels.

    Channel pair ``(i, i + d/2)`` of a head turns by ``p * base ** (-2 i / d)`` for a token
    at coordinate ``p``; with ``A`` coordinate axes each axis gets ``d / A`` of the channels
    (``d / (2A)`` pairs). It has no weights: the encoder makes one and hands its angles to
    every attention layer.

    Args:
        head_dim: channels per head ``d``; must be even.
        base: the frequency base.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ConfigError(
                f"backbone.positions=rope needs an even head size, but backbone.dim / backbone.heads = {head_dim}; "
                "change dim or heads, or choose positions from sinusoidal, learned, none"
            )
        self.head_dim = head_dim
        self.base = base

    def forward(self, coords: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``cos`` and ``sin`` ``(B or 1, 1, T, d)`` for coordinates ``(T, A)`` or ``(B, T, A)``."""
        axes = coords.shape[-1]
        if self.head_dim % (2 * axes):
            raise ConfigError(
                f"backbone.positions=rope over {axes} coordinate axes needs a head size divisible by {2 * axes}, "
                f"got {self.head_dim}; change backbone.dim or backbone.heads"
            )
        pairs = self.head_dim // (2 * axes)
        precision = torch.promote_types(dtype, torch.float32)  # angles in at least float32
        freqs = self.base ** (-torch.arange(pairs, device=coords.device, dtype=precision) / pairs)
        angles = (coords.to(precision).unsqueeze(-1) * freqs).flatten(-2)  # (…, T, d/2): axis-major
        angles = torch.cat([angles, angles], dim=-1)  # (…, T, d): pair (i, i + d/2) shares angle i
        if angles.dim() == 2:
            angles = angles[None]  # (1, T, d)
        angles = angles[:, None]  # (B or 1, 1, T, d)
        return angles.cos().to(dtype), angles.sin().to(dtype)


Position = Literal["sinusoidal", "learned", "rope", "none"]
POSITIONS: tuple[str, ...] = get_args(Position)


def build_positions(kind: str, dim: int, max_len: int) -> nn.Module:
    """The additive positional encoding named ``kind`` (one of :data:`POSITIONS`); ``rope``
    adds nothing here (the encoder's :class:`Rotary` does the work)."""
    if kind == "sinusoidal":
        return SinusoidalPositions(dim)
    if kind == "learned":
        return LearnedPositions(dim, max_len)
    if kind in ("none", "rope"):  # rope rotates queries and keys inside attention instead
        return NoPositions()
    raise ConfigError(f"backbone.positions={kind!r} is unknown; choose one of {', '.join(POSITIONS)}")
