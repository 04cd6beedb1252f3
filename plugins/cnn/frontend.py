"""A small convolutional stem: images become a grid of CNN feature tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from annotated_types import Ge, MinLen
from torch import nn

from attnlab.errors import ConfigError
from attnlab.types import Batch, Tokens
from attnlab_vision.frontend import grid_positions


def conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ConvStem(nn.Module):
    """Stages of (3x3 stride-2 conv, 3x3 conv), each with BatchNorm and ReLU, then a 1x1 to ``dim``.

    Each stage halves the resolution, rounding up (a padded 3x3 stride-2 convolution gives
    ``ceil(S / 2)``), so any image size works: ``len(channels)`` stages turn an ``S x S``
    image into ``g x g`` tokens with ``g = ceil(S / 2^n)`` (28 px, 4 stages: 28, 14, 7, 4, 2).
    With ``backbone.depth=0`` and mean pooling this is a plain CNN classifier; with depth > 0
    it is a hybrid CNN + self-attention model.

    Args:
        in_channels: image channels (from the data).
        image_size: image side in pixels (from the data).
        dim: token width (``backbone.dim``).
        channels: output channels of each stage.
    """

    def __init__(
        self,
        in_channels: Annotated[int, Ge(1)],
        image_size: Annotated[int, Ge(1)],
        dim: Annotated[int, Ge(1)],
        channels: Annotated[Sequence[Annotated[int, Ge(1)]], MinLen(1)] = (32, 64, 128, 128),
    ) -> None:
        super().__init__()
        if not channels:
            raise ConfigError("frontend.channels is empty; give the output channels of at least one stage")
        stages: list[nn.Module] = []
        c_in = in_channels
        for c_out in channels:
            stages += [conv_bn_relu(c_in, c_out, stride=2), conv_bn_relu(c_out, c_out, stride=1)]
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.proj = nn.Conv2d(c_in, dim, kernel_size=1)
        grid = image_size
        for _ in channels:
            grid = (grid - 1) // 2 + 1  # (S + 2 * 1 - 3) // 2 + 1: a padded 3x3 stride-2 convolution
        self.register_buffer("positions", grid_positions(grid, grid), persistent=False)

    def forward(self, batch: Batch) -> Tokens:
        x = self.proj(self.stages(batch["inputs"]))  # (B, D, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, g*g, D)
        pad_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return Tokens(x=x, pad_mask=pad_mask, positions=self.positions)
