"""head.pooling=attention: a softmax over real tokens of their score against a learned query."""

from __future__ import annotations

import math

import torch

from attnlab.heads import SequenceHead
from attnlab.types import Encoded


def test_attention_pooling_by_hand_and_blind_to_padding():
    torch.manual_seed(0)
    head = SequenceHead(dim=4, num_classes=3, pooling="attention")
    with torch.no_grad():
        head.query.copy_(torch.randn(4))
    x, mask = torch.randn(2, 5, 4), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    logits = head(Encoded(x=x, pad_mask=mask))
    for b in range(2):
        real = [t for t in range(5) if mask[b, t]]
        scores = [sum(x[b, t, d].item() * head.query[d].item() for d in range(4)) / 2.0 for t in real]
        z = sum(math.exp(s) for s in scores)
        pooled = sum(math.exp(s) / z * x[b, t] for s, t in zip(scores, real))
        torch.testing.assert_close(logits[b], head.fc(pooled), rtol=1e-5, atol=1e-6)
    x2 = x.clone()
    x2[0, 3:] = 100.0  # padding changes nothing
    torch.testing.assert_close(head(Encoded(x=x2, pad_mask=mask)), logits)


def test_attention_pooling_starts_as_the_mean():
    torch.manual_seed(0)
    attention, mean = SequenceHead(4, 3, pooling="attention"), SequenceHead(4, 3, pooling="mean")
    mean.fc.load_state_dict(attention.fc.state_dict())
    enc = Encoded(x=torch.randn(3, 6, 4), pad_mask=torch.rand(3, 6) > 0.3)
    enc.pad_mask[:, 0] = True
    torch.testing.assert_close(attention(enc), mean(enc))
