"""Truncated (local-window) attention against a naive softmax with an explicit band mask.

The reference here builds the ``T x T`` mask "query i sees key j when i - left <= j <= i + right
and j is real (or j == i)" by hand and takes a plain softmax; the blockwise path must match
it in outputs and gradients, and must never hold a ``T x T`` tensor itself.
"""

from __future__ import annotations

import functools
import math
import re

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from attnlab.backbone import Encoder, SelfAttention
from attnlab.backbone import local as attention_module
from attnlab.backbone.local import BLOCK, local_attention
from attnlab.errors import ConfigError, find_user_error
from attnlab.types import Tokens
from conftest import compose_config

D, H = 32, 4


def lengths_mask(lengths: list[int], t: int) -> Tensor:
    return torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]


def reference_weights(q: Tensor, k: Tensor, left: int, right: int, key_mask: Tensor | None) -> Tensor:
    """Naive softmax ``(B, H, T, T)`` over the band, from an explicitly built mask."""
    b, _, t, d = q.shape
    allowed = torch.zeros(b, t, t, dtype=torch.bool)
    for i in range(t):
        allowed[:, i, max(0, i - left) : i + right + 1] = True
    if key_mask is not None:  # real keys only, but a padded query sees itself
        allowed &= key_mask[:, None, :] | torch.eye(t, dtype=torch.bool)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    return scores.masked_fill(~allowed[:, None], float("-inf")).softmax(dim=-1)


def reference_forward(attn: SelfAttention, x: Tensor, left: int, right: int, key_mask: Tensor | None) -> Tensor:
    """``attn``'s computation with its own weights, through :func:`reference_weights`."""
    b, t, _ = x.shape
    q, k, v = (part.reshape(b, t, H, D // H).transpose(1, 2) for part in attn.qkv(x).chunk(3, dim=-1))
    out = reference_weights(q, k, left, right, key_mask) @ v
    return attn.proj(out.transpose(1, 2).reshape(b, t, D))


def make_attention(dtype: torch.dtype = torch.float32, **kwargs) -> SelfAttention:
    torch.manual_seed(0)
    attn = SelfAttention(D, H, **kwargs)
    for p in attn.parameters():  # non-trivial biases
        torch.nn.init.normal_(p, std=0.2)
    return attn.to(dtype)


CASES = [  # T, left, right, lengths
    pytest.param(150, 16, 16, None, id="T-not-a-multiple-of-the-block"),
    pytest.param(200, 5, 37, [200, 130, 64], id="asymmetric-padded"),
    pytest.param(40, 100, 2, [40, 25, 3], id="T-shorter-than-the-window"),
    pytest.param(130, 0, 20, [130, 77, 1], id="no-left-context-padding-only-windows"),
    pytest.param(129, 64, 64, [129, 128, 65], id="window-64"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize(("t", "left", "right", "lengths"), CASES)
def test_blockwise_matches_a_band_masked_softmax_in_outputs_and_gradients(t, left, right, lengths, dtype, monkeypatch):
    monkeypatch.setattr(attention_module, "CHUNK_SCORES", 2**15)  # several chunks even at these sizes
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-10)
    attn, ref = make_attention(dtype, left=left, right=right), make_attention(dtype, left=left, right=right)
    b = 3 if lengths else 2
    key_mask = None if lengths is None else lengths_mask(lengths, t)
    x = torch.randn(b, t, D, dtype=dtype)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()

    out, weights = attn(x_ours, key_mask)
    expected = reference_forward(ref, x_ref, left, right, key_mask)
    assert weights is None and torch.isfinite(out).all()
    torch.testing.assert_close(out, expected, **tol)

    grad = torch.randn(b, t, D, dtype=dtype)
    (out * grad).sum().backward()
    (expected * grad).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **tol)
    if dtype == torch.float32:  # sums over B*T products: the reference's own float32 error is ~2e-5 here
        tol["rtol"] = 1e-4
    torch.testing.assert_close(attn.qkv.weight.grad, ref.qkv.weight.grad, **tol)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_gradients_pass_gradcheck_with_and_without_dropout(dropout_p, monkeypatch):
    """Float64 finite differences; dropout draws the same masks in the recomputing backward."""
    monkeypatch.setattr(attention_module, "CHUNK_SCORES", 2 * 2 * 2 * 4 * 9)  # 2 blocks of 4 per chunk
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 13, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    key_mask = lengths_mask([13, 6], 13)

    def seeded(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        torch.manual_seed(1)
        return local_attention(q, k, v, left=3, right=2, key_mask=key_mask, dropout_p=dropout_p, block=4)

    assert torch.autograd.gradcheck(seeded, (q, k, v), fast_mode=True)


def test_dropout_trains_on_the_blocked_path_and_leaves_the_random_state_alone():
    attn = make_attention(window=4, dropout=0.5).train()
    x = torch.randn(2, 90, D, requires_grad=True)
    out, _ = attn(x, lengths_mask([90, 50], 90))
    state = torch.get_rng_state()
    out.sum().backward()
    assert torch.equal(torch.get_rng_state(), state)  # the backward replays its own copy
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    attn.eval()
    assert not torch.allclose(out, attn(x, lengths_mask([90, 50], 90))[0])


def test_keys_outside_a_querys_window_do_not_change_it_and_keys_inside_do():
    attn = make_attention(left=7, right=3).eval()
    t, i = 100, 50
    x = torch.randn(1, t, D)
    base = attn(x)[0][0, i]

    def perturbed_at(j: int) -> Tensor:
        y = x.clone()
        y[0, j] += 10 * torch.randn(D)
        return attn(y)[0][0, i]

    for j in (0, i - 8, i + 4, t - 1):  # outside [i - 7, i + 3]
        torch.testing.assert_close(perturbed_at(j), base, atol=1e-6, rtol=0)
    for j in (i - 7, i - 1, i + 3):  # inside
        assert (perturbed_at(j) - base).abs().max() > 1e-3


def test_a_padded_batch_gives_each_example_its_own_output():
    attn = make_attention(left=9, right=4).eval()
    lengths, t = [170, 133, 5], 170
    x = torch.randn(3, t, D)
    batched, _ = attn(x, lengths_mask(lengths, t))
    for n, length in enumerate(lengths):
        alone, _ = attn(x[n : n + 1, :length])
        torch.testing.assert_close(batched[n, :length], alone[0], atol=1e-5, rtol=1e-5)


def test_padding_only_windows_give_no_nan_forward_or_backward():
    attn = make_attention(left=0, right=3)
    x = torch.randn(2, 70, D, requires_grad=True)
    out, _ = attn(x, lengths_mask([70, 1], 70))  # example 2: every window past frame 0 is padding
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in attn.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(window=0), "backbone.attention.window=0 must be a positive number of frames; use null for full"),
        (dict(window=-4), "backbone.attention.window=-4 must be a positive number of frames"),
        (dict(left=-1, right=3), "backbone.attention.left=-1 must be >= 0 frames"),
        (dict(window=8, left=4), "backbone.attention.window=8 disagrees with backbone.attention.left=4"),
        (dict(left=8), "backbone.attention.left=8 is set but backbone.attention.right is null; set both"),
        (dict(right=2), "backbone.attention.right=2 is set but backbone.attention.left is null; set both"),
        (dict(left=0, right=0), "backbone.attention.left=0 and right=0 let each frame see only itself"),
    ],
)
def test_bad_window_settings_fail_with_a_message(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SelfAttention(D, H, **kwargs)


def test_agreeing_window_and_sides_are_accepted():
    assert SelfAttention(D, H, window=8, left=8).sides == (8, 8)
    assert SelfAttention(D, H, left=0, right=5).sides == (0, 5)
    assert SelfAttention(D, H).sides is None


def test_a_window_covering_the_sequence_is_full_attention():
    full, wide = make_attention(), make_attention(window=30)
    x, key_mask = torch.randn(2, 31, D), lengths_mask([31, 20], 31)  # window 30 = T - 1
    torch.testing.assert_close(wide(x, key_mask)[0], full(x, key_mask)[0], atol=0, rtol=0)
    torch.testing.assert_close(wide(x, key_mask, True)[1], full(x, key_mask, True)[1], atol=0, rtol=0)
    # The blockwise path itself agrees too, on real queries.
    q, k, v = (torch.randn(2, H, 31, 8) for _ in range(3))
    blocked = local_attention(q, k, v, left=40, right=40, key_mask=key_mask, block=8)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
    torch.testing.assert_close(blocked.transpose(1, 2)[key_mask], dense.transpose(1, 2)[key_mask])


def test_returned_weights_are_the_band_masked_softmax():
    attn = make_attention(left=3, right=5).eval()
    x, key_mask = torch.randn(2, 80, D), lengths_mask([80, 61], 80)
    out, weights = attn(x, key_mask, return_attention=True)
    q, k, _ = (part.reshape(2, 80, H, D // H).transpose(1, 2) for part in attn.qkv(x).chunk(3, dim=-1))
    torch.testing.assert_close(weights, reference_weights(q, k, 3, 5, key_mask), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out, attn(x, key_mask)[0], atol=1e-5, rtol=1e-5)
    assert weights[0, :, 40, :37].abs().sum() == 0 and weights[0, :, 40, 46:].abs().sum() == 0


def test_encoder_with_a_windowed_attention_trains():
    enc = Encoder(dim=D, depth=2, heads=H, dropout=0.1, attention=functools.partial(SelfAttention, window=6))
    x = torch.randn(3, 100, D, requires_grad=True)
    mask = lengths_mask([100, 71, 9], 100)
    out = enc(Tokens(x, mask))
    out.x[mask].pow(2).mean().backward()
    assert out.x.shape == (3, 100, D) and torch.isfinite(out.x).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())
    maps = enc.eval()(Tokens(x, mask), return_attention=True).attention
    assert maps[0][:, :, 50, 57:].abs().sum() == 0 and torch.isfinite(maps[1]).all()


def test_config_turns_the_window_on():
    cfg = compose_config(["backbone.attention.window=64"])
    assert instantiate(cfg.backbone).blocks[0].attn.sides == (64, 64)
    with pytest.raises(Exception) as failure:
        instantiate(compose_config(["backbone.attention.window=0"]).backbone)
    assert "backbone.attention.window=0 must be a positive" in str(find_user_error(failure.value))


class LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an op makes (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for x in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(x, Tensor):
                self.numel = max(self.numel, x.numel())
        return out


def test_long_sequences_never_make_a_t_by_t_tensor(monkeypatch):
    t, left, right = 4096, 64, 64
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, **kwargs) -> Tensor:
        calls.append((q.shape[-2:], k.shape[-2:], None if attn_mask is None else attn_mask.shape[-2:]))
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", spy)
    attn = SelfAttention(256, 4, window=64)
    x = torch.randn(1, t, 256, requires_grad=True)
    with LargestTensor() as largest:
        attn(x, lengths_mask([t - 100], t))[0].sum().backward()
    span = BLOCK + left + right
    assert calls and all(q[0] == BLOCK and k[0] == span and m == (BLOCK, span) for q, k, m in calls)
    assert largest.numel <= 3 * t * 256  # the fused QKV projection; a T x T tensor would be 16.8M
