"""Rotary positions: the rotation written out pair by pair, and relative-offset invariance."""

from __future__ import annotations

import math
import re

import pytest
import torch

from attnlab.backbone import Encoder, SelfAttention
from attnlab.backbone.positions import Rotary, rotate
from attnlab.errors import ConfigError
from attnlab.types import Tokens


def naive_rotate(x: torch.Tensor, coords: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Turn each channel pair ``(i, i + d/2)`` of every token by its own angle, one at a time.

    Axis ``a`` of ``A`` owns pairs ``a * d/(2A) .. (a + 1) * d/(2A) - 1``; pair ``m`` of that
    axis turns by ``coords[t, a] * base ** (-2 m / (d / A))``.
    """
    t, d = x.shape[-2:]
    axes = coords.shape[-1]
    per_axis = d // (2 * axes)
    out = x.clone()
    for n in range(t):
        for i in range(d // 2):
            axis, m = divmod(i, per_axis)
            angle = float(coords[n, axis]) * base ** (-2 * m / (d / axes))
            a, b = x[..., n, i], x[..., n, i + d // 2]
            out[..., n, i] = a * math.cos(angle) - b * math.sin(angle)
            out[..., n, i + d // 2] = a * math.sin(angle) + b * math.cos(angle)
    return out


@pytest.mark.parametrize("coords", [torch.arange(6)[:, None] * 3, torch.tensor([[0, 0], [0, 1], [2, 5], [7, 3]])])
def test_rotation_matches_pairwise_rotation(coords):
    x = torch.randn(2, 3, len(coords), 8, dtype=torch.float64)
    cos, sin = Rotary(8)(coords, torch.float64)
    torch.testing.assert_close(rotate(x, cos, sin), naive_rotate(x, coords))


@pytest.mark.parametrize("score", ["scaled_dot", "dot"])
def test_shifting_every_position_leaves_the_scores_unchanged(score):
    torch.manual_seed(0)
    attn = SelfAttention(16, 2, score=score).double().eval()
    x = torch.randn(1, 7, 16, dtype=torch.float64)
    rotary = Rotary(8)
    base = torch.arange(7)[:, None]
    _, weights = attn(x, return_attention=True, rotation=rotary(base, torch.float64))
    for shift in (1, 13, 250):
        _, shifted = attn(x, return_attention=True, rotation=rotary(base + shift, torch.float64))
        torch.testing.assert_close(shifted, weights)
    _, unrotated = attn(x, return_attention=True)
    assert not torch.allclose(unrotated, weights)  # the rotation does change the scores


@pytest.mark.parametrize("cls_token", [False, True])
@pytest.mark.parametrize("grid", [False, True], ids=["1d", "2d"])
def test_encoder_with_rope_depends_on_relative_positions_only(cls_token, grid):
    torch.manual_seed(0)
    enc = Encoder(dim=16, depth=2, heads=2, positions="rope", cls_token=cls_token).double().eval()
    t = 6
    coords = torch.stack(torch.meshgrid(torch.arange(2), torch.arange(3), indexing="ij"), -1).flatten(0, 1)
    coords = coords if grid else torch.arange(t)[:, None]
    x = torch.randn(2, t, 16, dtype=torch.float64)
    mask = torch.arange(t)[None] < torch.tensor([[t], [4]])
    out = enc(Tokens(x, mask, coords if grid else None))
    moved = enc(Tokens(x, mask, coords + 5))
    torch.testing.assert_close(moved.x[mask], out.x[mask])
    if cls_token:
        torch.testing.assert_close(moved.cls, out.cls)


def test_rope_runs_on_the_fused_path_and_agrees_with_the_explicit_one():
    torch.manual_seed(0)
    enc = Encoder(dim=16, depth=2, heads=2, positions="rope", cls_token=True).eval()
    tokens = Tokens(torch.randn(2, 9, 16), torch.arange(9)[None] < torch.tensor([[9], [5]]))
    fused = enc(tokens)
    explicit = enc(tokens, return_attention=True)
    torch.testing.assert_close(fused.x[tokens.pad_mask], explicit.x[tokens.pad_mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.cls, explicit.cls, atol=1e-5, rtol=1e-5)


def test_rope_makes_the_encoder_order_aware():
    torch.manual_seed(0)
    enc = Encoder(dim=16, depth=1, heads=2, positions="rope").eval()
    x, mask = torch.randn(1, 6, 16), torch.ones(1, 6, dtype=torch.bool)
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    assert not torch.allclose(enc(Tokens(x, mask)).x[:, perm], enc(Tokens(x[:, perm], mask)).x, atol=1e-4)


def test_rope_needs_an_even_head_size():
    with pytest.raises(ConfigError, match=re.escape("backbone.positions=rope needs an even head size")):
        Encoder(dim=6, depth=1, heads=2, positions="rope")
    enc = Encoder(dim=12, depth=1, heads=2, positions="rope")  # head size 6: 1-D fine, 2-D needs 4 | 6
    with pytest.raises(ConfigError, match="over 2 coordinate axes needs a head size divisible by 4"):
        enc(Tokens(torch.randn(1, 4, 12), torch.ones(1, 4, dtype=torch.bool), torch.zeros(4, 2)))
