"""The backbone against PyTorch's own nn.TransformerEncoder, with copied weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnlab.backbone import Encoder, SelfAttention
from attnlab.errors import ConfigError
from attnlab.types import Tokens

D, H, DEPTH = 32, 4, 3


def reference_encoder(ours: Encoder) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        D, H, dim_feedforward=2 * D, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    ref = nn.TransformerEncoder(layer, DEPTH, norm=nn.LayerNorm(D), enable_nested_tensor=False)
    with torch.no_grad():
        for block, theirs in zip(ours.blocks, ref.layers, strict=True):
            theirs.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
            theirs.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
            theirs.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
            theirs.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
            theirs.linear1.load_state_dict(block.mlp.fc1.state_dict())
            theirs.linear2.load_state_dict(block.mlp.fc2.state_dict())
            theirs.norm1.load_state_dict(block.norm1.state_dict())
            theirs.norm2.load_state_dict(block.norm2.state_dict())
        ref.norm.load_state_dict(ours.norm.state_dict())
    return ref


def make_pair() -> tuple[Encoder, nn.TransformerEncoder]:
    torch.manual_seed(0)
    ours = Encoder(dim=D, depth=DEPTH, heads=H, mlp_ratio=2.0, dropout=0.0, positions="none")
    for p in ours.parameters():  # non-trivial norms and biases
        nn.init.normal_(p, std=0.2)
    return ours, reference_encoder(ours)


def lengths_mask(lengths: list[int], t: int) -> torch.Tensor:
    return torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("lengths", [None, [7, 3, 5]], ids=["full", "padded"])
def test_outputs_and_gradients_match_nn_transformer_encoder(lengths):
    ours, ref = make_pair()
    ours.train(), ref.train()
    t = 7
    mask = torch.ones(3, t, dtype=torch.bool) if lengths is None else lengths_mask(lengths, t)
    x = torch.randn(3, t, D)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()

    out = ours(Tokens(x_ours, mask)).x
    expected = ref(x_ref, src_key_padding_mask=None if lengths is None else ~mask)
    torch.testing.assert_close(out[mask], expected[mask], atol=1e-5, rtol=1e-5)

    weights = torch.randn(3, t, D)
    (out[mask] * weights[mask]).sum().backward()
    (expected[mask] * weights[mask]).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        ours.blocks[0].attn.qkv.weight.grad, ref.layers[0].self_attn.in_proj_weight.grad, atol=1e-5, rtol=1e-4
    )


def test_eval_mode_matches_pytorch_fast_path():
    ours, ref = make_pair()
    ours.eval(), ref.eval()
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        torch.testing.assert_close(ours(Tokens(x, torch.ones(2, 5, dtype=torch.bool))).x, ref(x), atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_real_tokens():
    ours, _ = make_pair()
    ours.eval()
    x = torch.randn(1, 4, D)
    short = ours(Tokens(x, torch.ones(1, 4, dtype=torch.bool))).x
    padded_x = torch.cat([x, 100 * torch.randn(1, 3, D)], dim=1)
    long = ours(Tokens(padded_x, lengths_mask([4], 7))).x
    torch.testing.assert_close(long[:, :4], short, atol=1e-5, rtol=1e-5)


def test_attention_weights_path_equals_fused_path_and_a_naive_softmax():
    torch.manual_seed(1)
    attn = SelfAttention(D, H).eval()
    x = torch.randn(2, 6, D)
    mask = lengths_mask([6, 4], 6)
    fused, none = attn(x, mask)
    explicit, weights = attn(x, mask, return_attention=True)
    assert none is None
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)

    q, k, _ = attn.qkv(x).chunk(3, dim=-1)
    q = q.view(2, 6, H, D // H).transpose(1, 2)
    k = k.view(2, 6, H, D // H).transpose(1, 2)
    naive = torch.empty(2, H, 6, 6)
    for b in range(2):
        for h in range(H):
            s = q[b, h] @ k[b, h].T / (D // H) ** 0.5
            s[:, ~mask[b]] = float("-inf")
            naive[b, h] = torch.softmax(s, dim=-1)
    torch.testing.assert_close(weights, naive, atol=1e-6, rtol=1e-5)
    assert torch.all(weights[1, :, :, 4:] == 0)


def test_cls_token_and_returned_maps():
    enc = Encoder(dim=D, depth=2, heads=H, positions="learned", max_len=8, cls_token=True).eval()
    out = enc(Tokens(torch.randn(2, 5, D), torch.ones(2, 5, dtype=torch.bool)), return_attention=True)
    assert out.x.shape == (2, 5, D) and out.cls.shape == (2, D)
    assert len(out.attention) == 2 and out.attention[0].shape == (2, H, 6, 6)
    torch.testing.assert_close(out.attention[0].sum(-1), torch.ones(2, H, 6))


def test_depth_zero_is_only_the_final_norm():
    enc = Encoder(dim=D, depth=0, heads=H)
    x = torch.randn(2, 3, D)
    torch.testing.assert_close(enc(Tokens(x, torch.ones(2, 3, dtype=torch.bool))).x, enc.norm(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(dim=30, heads=4), "backbone.dim=30 is not divisible by backbone.heads=4"),
        (dict(dim=32, heads=4, positions="rotary"), "backbone.positions='rotary' is unknown"),
        (dict(dim=32, heads=4, depth=0, cls_token=True), "cls_token=true needs backbone.depth >= 1"),
    ],
)
def test_bad_settings_fail_with_a_message(kwargs, message):
    kwargs = {"depth": 1, **kwargs}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Encoder(**kwargs)
