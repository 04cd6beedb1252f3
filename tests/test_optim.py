"""Weight decay groups: norms, biases, position tables and the CLS token are not decayed."""

from __future__ import annotations

import functools

import torch

from attnlab.backbone import Encoder
from attnlab.heads import SequenceHead
from attnlab.module import AttnlabModule
from attnlab.optim import param_groups
from attnlab_cnn import ConvStem
from attnlab_vision import PatchEmbed


def names(module: torch.nn.Module, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {n for n, p in module.named_parameters() if id(p) in ids}


def test_groups_hold_exactly_the_expected_parameters():
    model = AttnlabModule(
        frontend=PatchEmbed(in_channels=1, image_size=8, dim=8, patch_size=4),
        backbone=Encoder(dim=8, depth=2, heads=2, positions="learned", max_len=16, cls_token=True),
        head=SequenceHead(dim=8, num_classes=3),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05),
    )
    decay, no_decay = param_groups(model)
    # Written out from the architecture, not from the rule in the code.
    matrices = {"frontend.proj.weight", "head.fc.weight"} | {
        f"backbone.blocks.{i}.{w}"
        for i in range(2)
        for w in ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight")
    }
    assert names(model, decay) == matrices
    assert "weight_decay" not in decay  # the optimizer's own weight_decay applies
    assert no_decay["weight_decay"] == 0.0
    assert names(model, no_decay) == {n for n, _ in model.named_parameters()} - matrices
    assert {"backbone.cls", "backbone.positions.table", "backbone.norm.weight", "frontend.proj.bias"} <= names(
        model, no_decay
    )
    optimizer = model.optimizer_factory(param_groups(model))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0.0]


def test_batch_norm_parameters_are_not_decayed():
    stem = ConvStem(in_channels=1, image_size=16, dim=8, channels=[4])
    decay, no_decay = param_groups(stem)
    assert names(stem, decay) == {"stages.0.0.weight", "stages.1.0.weight", "proj.weight"}
    assert {"stages.0.1.weight", "stages.0.1.bias", "proj.bias"} <= names(stem, no_decay)


def test_frozen_parameters_are_left_out():
    layer = torch.nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    groups = param_groups(layer)
    assert len(groups) == 1 and names(layer, groups[0]) == {"weight"}
