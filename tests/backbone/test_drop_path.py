"""Stochastic depth: identity at evaluation, whole residual branches dropped per example in training."""

from __future__ import annotations

import pytest
import torch

from attnlab.backbone import Encoder, SelfAttention
from attnlab.backbone.encoder import Block, DropPath
from attnlab.errors import ConfigError
from attnlab.types import Tokens


def make_block(p: float) -> Block:
    torch.manual_seed(0)
    return Block(dim=8, heads=2, mlp_ratio=2.0, dropout=0.0, attention=SelfAttention, drop_path=p)


def branch_outputs(block: Block, x: torch.Tensor) -> torch.Tensor:
    """The four outputs a block can give per example, one per (attention kept, MLP kept) pair,
    written out by hand: ``(4, B, T, D)``, in the order (0,0), (0,1), (1,0), (1,1)."""
    keep = 1.0 - block.drop_path.p
    outs = []
    with torch.no_grad():
        for attn_on in (0.0, 1.0):
            attended, _ = block.attn(block.norm1(x), None)
            h = x + attn_on * attended / keep
            for mlp_on in (0.0, 1.0):
                outs.append(h + mlp_on * block.mlp(block.norm2(h)) / keep)
    return torch.stack(outs)


def test_eval_is_the_identity_of_drop_path():
    x = torch.randn(5, 6, 8)
    dropped, plain = make_block(0.7).eval(), make_block(0.0).eval()
    assert torch.equal(dropped(x, None)[0], plain(x, None)[0])


def test_training_drops_whole_branches_per_example():
    block = make_block(0.5).train()
    x = torch.randn(400, 3, 8)
    torch.manual_seed(1)
    with torch.no_grad():
        out = block(x, None)[0]
    candidates = branch_outputs(block, x)  # (4, B, T, D)
    close = (candidates - out[None]).abs().flatten(2).amax(-1) < 1e-5  # (4, B): every token of the example matches
    assert (close.sum(0) == 1).all(), "each example's output is exactly one of the four whole-branch choices"
    choice = close.float().argmax(0)  # (B,)
    counts = torch.bincount(choice, minlength=4).float() / len(choice)
    assert (counts - 0.25).abs().max() < 0.08, counts  # both branches dropped independently with p = 0.5


def test_drop_path_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.randn(20000, 1, 4)
    out = DropPath(0.3).train()(x)
    dropped = (out == 0).all(-1).flatten()
    assert abs(dropped.float().mean().item() - 0.3) < 0.02
    assert torch.allclose(out[~dropped], x[~dropped] / 0.7)


def test_rates_rise_linearly_over_depth():
    enc = Encoder(dim=8, depth=5, heads=2, drop_path=0.2)
    assert [b.drop_path.p for b in enc.blocks] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert [b.drop_path.p for b in Encoder(dim=8, depth=1, heads=2, drop_path=0.2).blocks] == [0.0]


def test_encoder_at_eval_ignores_drop_path():
    tokens = Tokens(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool))
    torch.manual_seed(0)
    a = Encoder(dim=8, depth=3, heads=2, drop_path=0.5).eval()
    torch.manual_seed(0)
    b = Encoder(dim=8, depth=3, heads=2).eval()
    assert torch.equal(a(tokens).x, b(tokens).x)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_bad_rate_is_a_config_error(p):
    with pytest.raises(ConfigError, match="drop_path"):
        Encoder(dim=8, depth=2, heads=2, drop_path=p)
