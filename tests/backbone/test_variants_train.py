"""Every attention variant and recurrent baseline trains end to end for a few batches.

Short real runs (``conftest.FAST``: 3 training batches, tiny model) through ``attnlab.train``;
the loss of every step must stay finite (the NaN guard callback stops a run otherwise) and
the run must report its metrics.
"""

from __future__ import annotations

import json
import math

import pytest

from attnlab.train import train
from conftest import FAST

VARIANTS = {
    "dot": ["backbone.attention.score=dot"],
    "additive": ["backbone.attention.score=additive"],
    "bilinear-window": ["backbone.attention.score=bilinear", "backbone.attention.window=3"],
    "relu": ["backbone.attention.normalize=relu"],
    "hard-topk1": ["backbone.attention.topk=1"],
    "topk-relu-rope": ["backbone.attention.topk=4", "backbone.attention.normalize=relu", "backbone.positions=rope"],
    "rope-cls": ["backbone.positions=rope"],
    "lstm": ["backbone=lstm", "backbone.hidden=16"],
    "gru-uni": ["backbone=gru", "backbone.hidden=16", "backbone.bidirectional=false", "backbone.depth=2"],
}


@pytest.mark.parametrize("overrides", list(VARIANTS.values()), ids=list(VARIANTS))
def test_variant_trains_without_nan(overrides, make_config, tmp_path):
    fast = [o for o in FAST if not (overrides[0].startswith("backbone=") and o.startswith("backbone.heads"))]
    cfg = make_config(*fast, *overrides, "logger=csv", "test=false", "trainer.limit_val_batches=1")
    value = train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/loss"])
    assert value == metrics["val/acc"]
