"""CNN plugin: the conv stem's token grid, and reuse of the vision datasets."""

from __future__ import annotations

import math

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


@pytest.mark.parametrize("size", [1, 2, 5, 7, 28, 31, 33, 40, 57])
def test_conv_stem_takes_any_image_size(size):
    stem = ConvStem(in_channels=3, image_size=size, dim=8, channels=(4, 4, 4, 4)).eval()
    tokens = stem({"inputs": torch.randn(2, 3, size, size)})
    tokens.check()
    grid = size
    for _ in range(4):
        grid = math.ceil(grid / 2)
    assert tokens.x.shape == (2, grid * grid, 8)
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    assert torch.equal(tokens.positions, torch.stack([rows.flatten(), cols.flatten()], -1))


def test_conv_stem_needs_a_stage():
    with pytest.raises(ConfigError, match="frontend.channels"):
        ConvStem(in_channels=1, image_size=40, dim=8, channels=())


def test_cnn_reuses_the_vision_datasets():
    cnn = plugins.get("cnn")
    assert cnn.sources == SOURCES == plugins.get("vision").sources
    assert not (cnn.config_dir / "data").exists()
