"""CNN plugin: the conv stem's token grid, and reuse of the vision datasets."""

from __future__ import annotations

import pytest
import torch

from attnlab import plugins
from attnlab.errors import ConfigError
from attnlab_cnn import ConvStem
from attnlab_vision import SOURCES


def test_conv_stem_turns_an_image_into_a_grid_of_tokens():
    stem = ConvStem(in_channels=1, image_size=64, dim=24, channels=(8, 16, 16))
    tokens = stem({"inputs": torch.randn(3, 1, 64, 64)})
    assert tokens.x.shape == (3, 64, 24)  # 64 / 2^3 = 8 -> 8 x 8 tokens
    assert tokens.positions.shape == (64, 2) and tokens.positions.max() == 7


def test_conv_stem_checks_the_image_size():
    with pytest.raises(ConfigError, match="must be divisible by 2\\^4=16"):
        ConvStem(in_channels=1, image_size=40, dim=8)


def test_cnn_reuses_the_vision_datasets():
    cnn = plugins.get("cnn")
    assert cnn.sources == SOURCES == plugins.get("vision").sources
    assert not (cnn.config_dir / "data").exists()
