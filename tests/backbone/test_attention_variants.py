"""Attention variants (score, normalize, top-k) against a naive reference written with loops.

The reference takes ``SelfAttention``'s own projection weights and, for every example, head
and real query, lists the keys the query may see (real keys, inside the window), scores
each key with the formula written out, keeps the top k, normalises, and sums the values.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import Tensor

from attnlab.backbone import SelfAttention
from attnlab.backbone import attention as attention_module
from attnlab.backbone.attention import NORMALIZE, SCORES
from attnlab.errors import ConfigError

D, H = 16, 2
HD = D // H


def lengths_mask(lengths: list[int], t: int) -> Tensor:
    return torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]


def make_attention(**kwargs) -> SelfAttention:
    torch.manual_seed(0)
    attn = SelfAttention(D, H, **kwargs).double()
    with torch.no_grad():
        attn.qkv.bias.normal_(std=0.2)
    return attn


def naive_score(attn: SelfAttention, h: int, q: Tensor, k: Tensor) -> Tensor:
    """One query's score against one key, straight from the formulas."""
    if attn.score == "scaled_dot":
        return (q * k).sum() / math.sqrt(HD)
    if attn.score == "dot":
        return (q * k).sum()
    if attn.score == "bilinear":
        return q @ attn.bilinear[h] @ k
    return attn.additive_v[h] @ torch.tanh(q @ attn.additive_q[h] + k @ attn.additive_k[h])


def naive_row(attn: SelfAttention, scores: dict[int, Tensor], t: int) -> Tensor:
    """Weights ``(T,)`` of one query from the scores of the keys it may see."""
    if attn.topk is not None:
        ranked = sorted(scores, key=lambda j: float(scores[j].detach()), reverse=True)
        scores = {j: scores[j] for j in ranked[: attn.topk]}
    row = torch.zeros(t, dtype=torch.float64)
    values = torch.stack(list(scores.values()))
    if attn.normalize == "softmax":
        weights = torch.exp(values - values.max()) / torch.exp(values - values.max()).sum()
    else:
        positive = torch.clamp(values, min=0)
        weights = positive / positive.sum() if positive.sum() > 0 else positive
    for j, w in zip(scores, weights, strict=True):
        row[j] = w
    return row


def naive_attention(
    attn: SelfAttention, x: Tensor, lengths: list[int], left: int | None, right: int | None
) -> tuple[Tensor, Tensor]:
    """Outputs ``(B, T, D)`` and weights ``(B, H, T, T)`` on real queries (zeros elsewhere)."""
    b, t, _ = x.shape
    q, k, v = (part.reshape(b, t, H, HD).transpose(1, 2) for part in attn.qkv(x).chunk(3, dim=-1))
    weights = torch.zeros(b, H, t, t, dtype=torch.float64)
    for n in range(b):
        for h in range(H):
            for i in range(lengths[n]):
                lo = 0 if left is None else max(0, i - left)
                hi = lengths[n] if right is None else min(lengths[n], i + right + 1)
                scores = {j: naive_score(attn, h, q[n, h, i], k[n, h, j]) for j in range(lo, hi)}
                weights[n, h, i] = naive_row(attn, scores, t)
    out = (weights @ v).transpose(1, 2).reshape(b, t, D)
    return attn.proj(out), weights


VARIANTS = [(s, n, k) for s in SCORES for n in NORMALIZE for k in (None, 2)]
WINDOWS = [pytest.param(None, None, id="full"), pytest.param(2, 1, id="window-2-1")]


@pytest.mark.parametrize(("left", "right"), WINDOWS)
@pytest.mark.parametrize(("score", "normalize", "topk"), VARIANTS, ids=lambda v: str(v))
def test_variant_matches_the_naive_reference_with_padding_and_windows(score, normalize, topk, left, right):
    attn = make_attention(score=score, normalize=normalize, topk=topk, left=left, right=right).eval()
    lengths, t = [9, 6], 9
    x = torch.randn(2, t, D, dtype=torch.float64)
    mask = lengths_mask(lengths, t)
    out, weights = attn(x, mask, return_attention=True)
    plain, none = attn(x, mask)
    expected_out, expected_weights = naive_attention(attn, x, lengths, left, right)
    assert none is None
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    torch.testing.assert_close(plain, out)
    torch.testing.assert_close(weights.transpose(1, 2)[mask], expected_weights.transpose(1, 2)[mask])
    torch.testing.assert_close(out[mask], expected_out[mask])


@pytest.mark.parametrize("score", SCORES)
def test_gradients_match_the_naive_reference(score, monkeypatch):
    monkeypatch.setattr(attention_module, "ADDITIVE_CHUNK", 2 * H * 7 * HD * 3)  # 3 query rows per chunk
    attn = make_attention(score=score, normalize="softmax", left=3, right=2).train()
    lengths, t = [7, 4], 7
    x = torch.randn(2, t, D, dtype=torch.float64)
    mask = lengths_mask(lengths, t)
    out, _ = attn(x, mask)
    grads = torch.autograd.grad(out[mask].sum(), list(attn.parameters()))
    expected, _ = naive_attention(attn, x, lengths, 3, 2)
    expected_grads = torch.autograd.grad(expected[mask].sum(), list(attn.parameters()))
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("k", [1, 3, 11, 12])  # 11 = T - 1, 12 = T (keeps every key)
@pytest.mark.parametrize("normalize", NORMALIZE)
def test_topk_keeps_exactly_k_weights_per_query(k, normalize):
    attn = make_attention(topk=k, normalize=normalize, score="dot").eval()
    x = torch.randn(2, 12, D, dtype=torch.float64)
    mask = lengths_mask([12, 5], 12)
    _, weights = attn(x, mask, return_attention=True)
    nonzero = (weights > 0).sum(-1).transpose(1, 2)[mask]  # (real queries, H)
    kept = torch.tensor([min(k, 12)] * 12 + [min(k, 5)] * 5)[:, None]  # at most the real keys
    if normalize == "softmax":
        assert torch.all(nonzero == kept)
    else:  # relu drops the kept scores that are not positive
        assert torch.all(nonzero <= kept) and nonzero.max() == min(k, 12)
    assert torch.all(weights[1, :, :5, 5:] == 0)  # never a padded key
    if k == 1 and normalize == "softmax":  # hard attention: a one-hot on the best score
        _, full = make_attention(normalize=normalize, score="dot").eval()(x, mask, return_attention=True)
        best = full.argmax(-1, keepdim=True)
        torch.testing.assert_close(weights, torch.zeros_like(weights).scatter_(-1, best, 1.0))


@pytest.mark.parametrize("score", SCORES)
def test_softmax_rows_sum_to_one_over_real_keys(score):
    attn = make_attention(score=score).eval()
    x = torch.randn(2, 8, D, dtype=torch.float64)
    mask = lengths_mask([8, 3], 8)
    _, weights = attn(x, mask, return_attention=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, H, 8, dtype=torch.float64))
    assert torch.all(weights[1, :, :, 3:] == 0)


def test_relu_rows_with_no_positive_score_attend_to_nothing_without_nan():
    attn = make_attention(normalize="relu", score="dot").train()
    with torch.no_grad():  # zero queries: every score is 0, so every relu row is all zero
        attn.qkv.weight[:D] = 0
        attn.qkv.bias[:D] = 0
    x = torch.randn(2, 6, D, dtype=torch.float64, requires_grad=True)
    out, weights = attn(x, lengths_mask([6, 2], 6), return_attention=True)
    out.sum().backward()
    assert torch.all(weights == 0)
    torch.testing.assert_close(out, attn.proj.bias.expand_as(out))  # nothing attended: only the bias
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in attn.parameters())


@pytest.mark.parametrize(("score", "normalize", "topk"), VARIANTS, ids=lambda v: str(v))
def test_a_padded_batch_gives_each_example_its_own_output(score, normalize, topk):
    attn = make_attention(score=score, normalize=normalize, topk=topk, window=3).eval()
    lengths, t = [10, 7, 1], 10
    x = torch.randn(3, t, D, dtype=torch.float64)
    batched, _ = attn(x, lengths_mask(lengths, t))
    assert torch.isfinite(batched).all()
    for n, length in enumerate(lengths):
        alone, _ = attn(x[n : n + 1, :length])
        torch.testing.assert_close(batched[n, :length], alone[0])


def test_only_the_chosen_score_has_weights():
    names = {s: {n for n, _ in make_attention(score=s).named_parameters()} for s in SCORES}
    base = {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
    assert names["scaled_dot"] == names["dot"] == base
    assert names["bilinear"] == base | {"bilinear"}
    assert names["additive"] == base | {"additive_q", "additive_k", "additive_v"}


def test_additive_query_chunks_bound_the_intermediate(monkeypatch):
    """With chunks of 4 query rows the largest tensor made is one chunk's tanh input."""
    seen: list[tuple[int, ...]] = []
    real_tanh = torch.tanh

    def spy(x: Tensor) -> Tensor:
        seen.append(tuple(x.shape))
        return real_tanh(x)

    monkeypatch.setattr(attention_module, "ADDITIVE_CHUNK", 1 * H * 32 * HD * 4)
    monkeypatch.setattr(attention_module.torch, "tanh", spy)
    attn = make_attention(score="additive")
    x = torch.randn(1, 32, D, dtype=torch.float64, requires_grad=True)
    attn(x)[0].sum().backward()
    assert seen and all(shape == (1, H, 4, 32, HD) for shape in seen)  # forward and recomputed backward
    assert len(seen) == 2 * 32 // 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(score="foo"), "backbone.attention.score='foo' is unknown; choose one of scaled_dot, dot, additive, "),
        (dict(normalize="sparsemax"), "backbone.attention.normalize='sparsemax' is unknown; choose one of softmax"),
        (dict(topk=0), "backbone.attention.topk=0 must be a whole number >= 1"),
        (dict(topk=-3), "backbone.attention.topk=-3 must be a whole number >= 1"),
        (dict(topk=1.5), "backbone.attention.topk=1.5 must be a whole number >= 1"),
    ],
)
def test_bad_variant_settings_fail_with_a_message(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SelfAttention(D, H, **kwargs)
