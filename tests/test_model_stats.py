"""ModelStats: measured memory against sizes worked out from the shapes, and what a run logs."""

from __future__ import annotations

import functools
import logging

import pytest
import torch
import yaml

from attnlab.backbone import Encoder, RecurrentEncoder, SelfAttention
from attnlab.backbone import attention as attention_module
from attnlab.callbacks.model_stats import LiveTensorBytes, measure_backbone
from attnlab.train import train
from attnlab.types import Tokens
from conftest import FAST

B, T, D, H = 4, 128, 32, 2
TXT = B * H * T * T * 4  # bytes of one float32 (B, H, T, T) tensor


def test_live_bytes_follow_allocations_views_and_frees():
    outside = torch.ones(100)
    with LiveTensorBytes() as mode:
        mode.open()
        a = torch.empty(1000)  # 4000 bytes
        view = a.view(10, 100)  # shares a's storage
        outside.mul_(2)  # in place on a tensor made before: nothing new
        del a
        assert mode.current == 4000  # the view keeps the storage
        b = (view + 1).sum()  # a 4000-byte temporary, then 4 bytes
        del view
        assert mode.current == 4
        del b
    assert mode.current == 0 and mode.close() == 4000 + 4000 + 4  # a, the temporary and the sum at once


def encoder(**attention) -> Encoder:
    torch.manual_seed(0)
    return Encoder(D, depth=1, heads=H, attention=functools.partial(SelfAttention, **attention)).eval()


def tokens() -> Tokens:
    return Tokens(torch.randn(B, T, D), torch.ones(B, T, dtype=torch.bool))


def test_fused_default_attention_holds_no_t_by_t_tensor():
    stats = measure_backbone(encoder(), tokens())
    qkv = B * T * 3 * D * 4
    assert stats["attention_layers"] == 1 and stats["seq_len"] == T
    assert qkv < stats["attention_peak_bytes"] < TXT  # at least the QKV projection, never T x T
    assert stats["backbone_peak_bytes"] >= stats["attention_peak_bytes"]


@pytest.mark.parametrize("variant", [dict(score="dot"), dict(normalize="relu"), dict(topk=3)])
def test_explicit_variants_keep_scores_and_weights_for_the_backward(variant):
    stats = measure_backbone(encoder(**variant), tokens())
    assert stats["attention_peak_bytes"] >= 2 * TXT  # scores and weights, both saved for the backward


def test_additive_query_chunks_stay_far_below_the_full_intermediate(monkeypatch):
    monkeypatch.setattr(attention_module, "ADDITIVE_CHUNK", B * H * T * (D // H) * 16)  # 16 of 128 query rows
    stats = measure_backbone(encoder(score="additive"), tokens())
    full = TXT * (D // H)  # the whole (B, H, T, T, d) tanh intermediate
    assert TXT <= stats["attention_peak_bytes"] < full / 2


def test_recurrent_backbone_has_no_attention_memory():
    stats = measure_backbone(RecurrentEncoder(D, depth=1, hidden=8).eval(), tokens())
    assert stats["attention_peak_bytes"] == 0 and stats["attention_layers"] == 0
    assert stats["backbone_peak_bytes"] >= B * T * D * 4  # at least the output


def test_a_run_logs_the_stats_to_the_log_and_the_loggers(make_config, tmp_path, caplog):
    cfg = make_config(*FAST, "logger=csv", "test=false", "trainer.limit_val_batches=1", "backbone.attention.score=dot")
    with caplog.at_level(logging.INFO, logger="attnlab"):
        train(cfg)
    hparams = {}
    for path in (tmp_path / "run").rglob("hparams.yaml"):
        hparams.update(yaml.safe_load(path.read_text()) or {})
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    params = sum(v.numel() for v in ckpt["state_dict"].values())
    assert hparams["model/params"] == params == hparams["model/params_trainable"]
    batch, seq = hparams["model/batch_size"], hparams["model/seq_len"]
    assert batch == 16 and seq >= 2
    assert hparams["model/attention_peak_bytes"] >= 2 * batch * 2 * seq * seq * 4  # dot: scores + weights
    assert any("parameters" in r.message and "largest attention layer" in r.message for r in caplog.records)
