"""Heads: pooling over real tokens only, losses that skip padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.errors import ConfigError
from attnlab.heads import IGNORE_INDEX, SequenceHead, TokenHead
from attnlab.types import Encoded


def test_mean_pooling_averages_real_tokens_only():
    head = SequenceHead(dim=4, num_classes=3, pooling="mean")
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    logits = head(Encoded(x, mask))
    expected = torch.stack([x[0, :2].mean(0), x[1].mean(0)]) @ head.fc.weight.T + head.fc.bias
    torch.testing.assert_close(logits, expected)


def test_cls_pooling_uses_the_cls_encoding_and_needs_one():
    head = SequenceHead(dim=4, num_classes=3, pooling="cls")
    cls = torch.randn(2, 4)
    enc = Encoded(torch.randn(2, 5, 4), torch.ones(2, 5, dtype=torch.bool), cls=cls)
    torch.testing.assert_close(head(enc), head.fc(cls))
    with pytest.raises(ConfigError, match="backbone.cls_token=true"):
        head(Encoded(enc.x, enc.pad_mask))


def test_token_head_ignores_padding_in_loss_and_metrics():
    head = TokenHead(dim=4, num_classes=3)
    enc = Encoded(torch.randn(2, 3, 4), torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    target = torch.tensor([[0, 2, IGNORE_INDEX], [1, 1, 0]])
    logits = head(enc)
    batch = {"target": target}
    real = [logits[0, 0], logits[0, 1], logits[1, 0], logits[1, 1], logits[1, 2]]
    expected = F.cross_entropy(torch.stack(real), torch.tensor([0, 2, 1, 1, 0]))
    torch.testing.assert_close(head.loss(logits, batch), expected)
    preds, flat = head.for_metrics(logits, batch)
    assert preds.shape == (5, 3) and flat.tolist() == [0, 2, 1, 1, 0]


def test_token_head_rejects_labels_that_do_not_line_up_with_tokens():
    head = TokenHead(dim=4, num_classes=3)
    logits = head(Encoded(torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)))
    with pytest.raises(ConfigError, match="one label per token"):
        head.loss(logits, {"target": torch.zeros(2, 6, dtype=torch.long)})
