"""Recurrent baselines: padded batches read exactly like single sequences, and config errors."""

from __future__ import annotations

import re

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from attnlab import plugins
from attnlab.backbone import RecurrentEncoder
from attnlab.errors import ConfigError
from attnlab.types import Tokens
from conftest import compose_config

D, HIDDEN = 12, 10


def lengths_mask(lengths: list[int], t: int) -> torch.Tensor:
    return torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_padded_batch_equals_each_sequence_alone(kind, bidirectional):
    torch.manual_seed(0)
    enc = RecurrentEncoder(D, kind=kind, depth=2, hidden=HIDDEN, bidirectional=bidirectional, cls_token=True)
    enc = enc.double().eval()
    lengths, t = [9, 4, 1, 7], 9
    x = torch.randn(4, t, D, dtype=torch.float64)
    padded = x.clone()
    padded[~lengths_mask(lengths, t)] = 1e3  # padding that would wreck any state it reached
    out = enc(Tokens(padded, lengths_mask(lengths, t)))
    assert out.attention is None and out.x.shape == (4, t, D) and out.cls.shape == (4, D)
    for n, length in enumerate(lengths):
        # Reference: PyTorch's RNN on the sequence alone, no packing, then the same projection and norm.
        states, _ = enc.rnn(x[n : n + 1, :length])  # (1, length, dirs * hidden)
        torch.testing.assert_close(out.x[n, :length], enc.norm(enc.proj(states[0])))
        final = states[0, -1]  # forward direction: the state after the last token
        if bidirectional:  # backward direction: its state after reading back to the first token
            final = torch.cat([states[0, -1, :HIDDEN], states[0, 0, HIDDEN:]])
        torch.testing.assert_close(out.cls[n], enc.norm(enc.proj(final)))


def test_without_cls_token_there_is_no_summary_and_gradients_flow():
    enc = RecurrentEncoder(D, kind="gru", depth=1, hidden=D, bidirectional=False)
    assert not enc.has_cls and isinstance(enc.proj, torch.nn.Identity)  # width == dim: no projection
    x = torch.randn(2, 5, D, requires_grad=True)
    out = enc(Tokens(x, lengths_mask([5, 3], 5)))
    # A weighted sum: the plain sum of a LayerNorm's outputs is constant, so its gradient is zero.
    weights = torch.randn(D)
    (out.x[lengths_mask([5, 3], 5)] * weights).sum().backward()
    assert out.cls is None and torch.all(x.grad[1, 3:] == 0) and x.grad[1, :3].abs().sum() > 0


def test_padding_must_be_at_the_end():
    enc = RecurrentEncoder(D, depth=1, hidden=HIDDEN)
    mask = torch.tensor([[False, True, True]])
    with pytest.raises(ValueError, match="padding at the end"):
        enc(Tokens(torch.randn(1, 3, D), mask))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kind="rnn"), "backbone.kind='rnn' is unknown; choose one of lstm, gru"),
        (dict(depth=0), "backbone.depth=0 leaves backbone=lstm without recurrent layers"),
    ],
)
def test_bad_settings_fail_with_a_message(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RecurrentEncoder(D, **kwargs)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_every_modality_composes_with_recurrent_backbones(kind):
    """A modality's attention defaults (speech's window, vision's CLS token) are not demands on a
    recurrent backbone: it arrives as its file says under every modality, and builds."""
    own = OmegaConf.to_container(compose_config([f"backbone={kind}"]).backbone)
    for modality in sorted(plugins.available()):
        cfg = compose_config([f"modality={modality}", f"backbone={kind}"])
        assert OmegaConf.to_container(cfg.backbone) == own
        backbone = instantiate(cfg.backbone)
        assert isinstance(backbone, RecurrentEncoder) and backbone.kind == kind
        assert backbone.has_cls == own["cls_token"]


def test_an_attention_setting_typed_for_a_recurrent_backbone_is_refused():
    with pytest.raises(Exception, match=r"backbone\.attention\.window"):
        compose_config(["modality=speech", "backbone=lstm", "backbone.attention.window=16"])
