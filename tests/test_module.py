"""The LightningModule's parts: torch.compile, the schedule, the CLS/pooling check."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from attnlab.backbone import Encoder
from attnlab.errors import ConfigError
from attnlab.heads import SequenceHead
from attnlab.module import AttnlabModule
from attnlab.optim import warmup_cosine
from attnlab_vision import PatchEmbed


def tiny_module(compile: bool, cls_token: bool = True, pooling: str = "auto") -> AttnlabModule:
    torch.manual_seed(0)
    return AttnlabModule(
        frontend=PatchEmbed(in_channels=1, image_size=32, dim=16, patch_size=8),
        backbone=Encoder(dim=16, depth=1, heads=2, cls_token=cls_token),
        head=SequenceHead(dim=16, num_classes=3, pooling=pooling),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        compile=compile,
    )


def test_compiled_forward_matches_eager():
    batch = {"inputs": torch.randn(2, 1, 32, 32), "target": torch.tensor([0, 2])}
    eager, compiled = tiny_module(False).eval(), tiny_module(True).eval()
    compiled.load_state_dict(eager.state_dict())
    assert compiled._encode is not compiled._encode_eager
    with torch.no_grad():
        torch.testing.assert_close(compiled(batch)[0], eager(batch)[0], atol=1e-5, rtol=1e-5)


def test_attention_maps_come_back_when_asked():
    module = tiny_module(False).eval()
    logits, encoded = module({"inputs": torch.randn(2, 1, 32, 32)}, return_attention=True)
    assert logits.shape == (2, 3) and encoded.attention[0].shape == (2, 2, 17, 17)


def test_cls_pooling_without_cls_token_is_a_config_error():
    with pytest.raises(ConfigError, match="head.pooling=cls needs backbone.cls_token=true"):
        tiny_module(False, cls_token=False, pooling="cls")


def test_warmup_cosine_follows_the_formula():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = warmup_cosine(opt, total_steps=20, warmup_fraction=0.2, min_lr_ratio=0.1)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    warm = [(s + 1) / 5 for s in range(4)]  # linear from 1/(w+1) up to the peak
    cosine = [0.1 + 0.9 * (1 + math.cos(math.pi * s / 16)) / 2 for s in range(16)]
    assert seen == pytest.approx(warm + cosine, abs=1e-6)
