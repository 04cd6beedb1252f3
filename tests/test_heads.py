"""Heads: pooling over real tokens only, losses that skip padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlab.errors import ConfigError
from attnlab.heads import IGNORE_INDEX, CTCHead, SequenceHead, TokenHead, ctc_greedy_decode
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
    torch.testing.assert_close(head.loss(logits, enc.pad_mask, batch), expected)
    preds, flat = head.for_metrics(logits, enc.pad_mask, batch)
    assert preds.shape == (5, 3) and flat.tolist() == [0, 2, 1, 1, 0]


def test_token_head_rejects_labels_that_do_not_line_up_with_tokens():
    head = TokenHead(dim=4, num_classes=3)
    enc = Encoded(torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="one label per token"):
        head.loss(head(enc), enc.pad_mask, {"target": torch.zeros(2, 6, dtype=torch.long)})


def test_ctc_greedy_decoding_merges_repeats_and_drops_blanks():
    # classes: 0 = blank, k + 1 = label k; path "1 1 _ 1 3 3 _" -> labels [0, 0, 2]
    path = torch.tensor([[1, 1, 0, 1, 3, 3, 0, 2]])
    logits = F.one_hot(path, 4).float()
    assert ctc_greedy_decode(logits, torch.tensor([7])) == [[0, 0, 2]]
    assert ctc_greedy_decode(logits, torch.tensor([8])) == [[0, 0, 2, 1]]


def test_ctc_loss_matches_pytorch_ctcloss_on_real_tokens_only():
    torch.manual_seed(0)
    head = CTCHead(dim=4, num_classes=3)
    enc = Encoded(torch.randn(2, 6, 4), torch.tensor([[1] * 6, [1] * 4 + [0] * 2], dtype=torch.bool))
    batch = {
        "target": torch.tensor([[0, 2, 1], [1, IGNORE_INDEX, IGNORE_INDEX]]),
        "target_lengths": torch.tensor([3, 1]),
    }
    logits = head(enc)
    reference = torch.nn.CTCLoss(blank=0)(
        logits.log_softmax(-1).transpose(0, 1),
        torch.tensor([[1, 3, 2], [2, 0, 0]]),
        torch.tensor([6, 4]),
        torch.tensor([3, 1]),
    )
    torch.testing.assert_close(head.loss(logits, enc.pad_mask, batch), reference)


def test_ctc_metric_is_the_label_error_rate():
    head = CTCHead(dim=4, num_classes=3)
    path = torch.tensor([[1, 0, 3, 0], [2, 2, 0, 0]])  # decodes to [0, 2] and [1]
    logits = F.one_hot(path, 4).float()
    batch = {
        "target": torch.tensor([[0, 1, 2], [1, IGNORE_INDEX, IGNORE_INDEX]]),
        "target_lengths": torch.tensor([3, 1]),
    }
    metrics = head.metrics()
    metrics.update(*head.for_metrics(logits, torch.ones(2, 4, dtype=torch.bool), batch))
    assert float(metrics.compute()["cer"]) == pytest.approx(1 / 4)  # one deletion in four reference labels


def test_the_sequence_loss_uses_soft_targets_and_the_metrics_hard_ones():
    """A batch transform (MixUp) adds ``soft_target`` (B, C); metrics keep reading ``target``."""
    torch.manual_seed(0)
    head = SequenceHead(dim=4, num_classes=3)
    logits = torch.randn(2, 3)
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    batch = {"inputs": None, "target": torch.tensor([0, 2]), "soft_target": soft}
    expected = -(soft * logits.log_softmax(-1)).sum(-1).mean()  # cross-entropy against probabilities
    torch.testing.assert_close(head.loss(logits, torch.ones(2, 1, dtype=torch.bool), batch), expected)
    assert torch.equal(head.for_metrics(logits, torch.ones(2, 1, dtype=torch.bool), batch)[1], batch["target"])
