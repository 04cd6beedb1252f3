"""Label smoothing and soft (mixed) targets in the heads' losses; metrics keep hard labels."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.backbone import Encoder
from attnlab.errors import ConfigError
from attnlab.heads import CTCHead, SequenceHead, TokenHead
from attnlab.module import AttnlabModule
from attnlab_vision import PatchEmbed


def smoothed_by_hand(logits: torch.Tensor, target: list[int], eps: float) -> float:
    """(1 - eps) * CE(label) + eps * mean over classes of -log p, averaged over examples."""
    total = 0.0
    for row, label in zip(logits.tolist(), target):
        log_z = math.log(sum(math.exp(v) for v in row))
        nll = [log_z - v for v in row]
        total += (1 - eps) * nll[label] + eps * sum(nll) / len(row)
    return total / len(target)


def test_sequence_head_smooths_as_by_hand_and_as_pytorch():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    loss = SequenceHead(dim=4, num_classes=4, label_smoothing=0.2).loss(logits, None, {"target": target})
    assert loss.item() == pytest.approx(smoothed_by_hand(logits, target.tolist(), 0.2), rel=1e-5)
    assert torch.allclose(loss, F.cross_entropy(logits, target, label_smoothing=0.2))
    plain = SequenceHead(dim=4, num_classes=4).loss(logits, None, {"target": target})
    assert plain.item() == pytest.approx(smoothed_by_hand(logits, target.tolist(), 0.0), rel=1e-5)


def test_token_head_smooths_real_tokens_only():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 5), torch.tensor([[1, 4, -100], [0, -100, -100]])
    loss = TokenHead(dim=4, num_classes=5, label_smoothing=0.1).loss(logits, None, {"target": target})
    real = target != -100
    assert loss.item() == pytest.approx(smoothed_by_hand(logits[real], target[real].tolist(), 0.1), rel=1e-5)


def test_soft_targets_reach_the_loss():
    torch.manual_seed(0)
    logits, a, b, lam = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2]), 0.7
    soft = lam * F.one_hot(a, 3).float() + (1 - lam) * F.one_hot(b, 3).float()  # MixUp of two label sets
    loss = SequenceHead(dim=4, num_classes=3).loss(logits, None, {"target": a, "soft_target": soft})
    mixed = lam * smoothed_by_hand(logits, a.tolist(), 0.0) + (1 - lam) * smoothed_by_hand(logits, b.tolist(), 0.0)
    assert loss.item() == pytest.approx(mixed, rel=1e-5)
    smoothed = SequenceHead(dim=4, num_classes=3, label_smoothing=0.1).loss(
        logits, None, {"target": a, "soft_target": soft}
    )
    assert torch.allclose(smoothed, F.cross_entropy(logits, 0.9 * soft + 0.1 / 3))


def test_metrics_use_hard_labels_while_the_loss_uses_soft_targets():
    torch.manual_seed(0)
    module = AttnlabModule(
        frontend=PatchEmbed(in_channels=1, image_size=8, dim=8, patch_size=4),
        backbone=Encoder(dim=8, depth=1, heads=2),
        head=SequenceHead(dim=8, num_classes=3),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
    )
    images, target = torch.randn(5, 1, 8, 8), torch.tensor([0, 1, 2, 1, 0])
    soft = F.one_hot((target + 1) % 3, 3).float()  # every soft target puts its mass on another class
    module._step({"inputs": images, "target": target, "soft_target": soft}, "val")
    module.eval()
    with torch.no_grad():
        logits, _ = module({"inputs": images, "target": target})
    assert module.val_metrics["acc"].compute().item() == pytest.approx((logits.argmax(-1) == target).float().mean())
    assert torch.allclose(
        module.head.loss(logits, None, {"target": target, "soft_target": soft}),
        F.cross_entropy(logits, (target + 1) % 3),
    )


@pytest.mark.parametrize("head", [TokenHead(dim=4, num_classes=3), CTCHead(dim=4, num_classes=3)])
def test_heads_without_soft_targets_refuse_them(head):
    batch = {
        "target": torch.zeros(2, 3, dtype=torch.long),
        "target_lengths": torch.ones(2, dtype=torch.long),
        "soft_target": torch.full((2, 3), 1 / 3),
    }
    with pytest.raises(ConfigError, match="soft targets"):
        head.loss(torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), batch)


@pytest.mark.parametrize("eps", [-0.1, 1.0])
def test_bad_smoothing_is_a_config_error(eps):
    with pytest.raises(ConfigError, match="label_smoothing"):
        SequenceHead(dim=4, num_classes=3, label_smoothing=eps)
