"""Positional encodings against the formulas written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from attnlab.backbone import Encoder, build_positions, sincos
from attnlab.errors import ConfigError
from attnlab.types import Tokens


def naive_1d(pos: float, dim: int) -> list[float]:
    half = dim // 2
    freqs = [10000 ** (-2 * i / dim) for i in range(half)]
    return [math.sin(pos * f) for f in freqs] + [math.cos(pos * f) for f in freqs]


def test_sinusoidal_1d_matches_the_formula():
    got = sincos(torch.arange(5)[:, None], 8)
    expected = torch.tensor([naive_1d(p, 8) for p in range(5)])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_sinusoidal_2d_gives_each_axis_half_the_channels():
    coords = torch.tensor([[0, 0], [2, 3], [1, 7]])
    got = sincos(coords, 16)
    expected = torch.tensor([naive_1d(r, 8) + naive_1d(c, 8) for r, c in coords.tolist()])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_sinusoidal_positions_default_to_the_token_index():
    pe = build_positions("sinusoidal", 8, max_len=16)
    x = torch.zeros(2, 3, 8)
    torch.testing.assert_close(pe(x, None)[1], torch.tensor([naive_1d(p, 8) for p in range(3)]))


def test_positions_make_the_encoder_order_aware_and_none_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 16)
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    mask = torch.ones(1, 6, dtype=torch.bool)
    for kind, equivariant in (("none", True), ("sinusoidal", False), ("learned", False)):
        enc = Encoder(dim=16, depth=1, heads=2, positions=kind, max_len=8).eval()
        if kind == "learned":
            torch.nn.init.normal_(enc.positions.table)
        out = enc(Tokens(x, mask)).x
        out_perm = enc(Tokens(x[:, perm], mask)).x
        assert torch.allclose(out[:, perm], out_perm, atol=1e-5) == equivariant, kind


def test_learned_positions_reject_sequences_longer_than_max_len():
    pe = build_positions("learned", 8, max_len=4)
    with pytest.raises(ConfigError, match="longer than backbone.max_len=4"):
        pe(torch.zeros(1, 5, 8), None)


def test_sinusoidal_2d_needs_dim_divisible_by_four():
    with pytest.raises(ConfigError, match="divisible by 4"):
        sincos(torch.zeros(3, 2), 6)
