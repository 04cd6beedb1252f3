"""ViT-style patch embedding: an image becomes a grid of patch tokens."""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge
from torch import Tensor, nn

from attnlab.errors import ConfigError
from attnlab.types import Batch, Tokens


def grid_positions(rows: int, cols: int, device: torch.device | None = None) -> Tensor:
    """Row and column of each token of a row-major ``rows x cols`` grid, ``(rows * cols, 2)``."""
    r, c = torch.meshgrid(torch.arange(rows, device=device), torch.arange(cols, device=device), indexing="ij")
    return torch.stack([r.flatten(), c.flatten()], dim=-1)


class PatchEmbed(nn.Module):
    """Cuts ``(B, C, S, S)`` images into ``patch_size`` squares and projects each to ``dim``.

    A strided convolution is the linear projection of flattened patches. Tokens carry
    their 2-D grid coordinates, so ``backbone.positions=sinusoidal`` is 2-D sin-cos.

    Args:
        in_channels: image channels (from the data).
        image_size: image side in pixels (from the data).
        dim: token width (``backbone.dim``).
        patch_size: patch side in pixels; must divide ``image_size``.
    """

    def __init__(
        self,
        in_channels: Annotated[int, Ge(1)],
        image_size: Annotated[int, Ge(1)],
        dim: Annotated[int, Ge(1)],
        patch_size: Annotated[int, Ge(1)] = 16,
    ) -> None:
        super().__init__()
        if patch_size < 1 or image_size % patch_size:
            raise ConfigError(
                f"data.source.image_size={image_size} is not divisible by frontend.patch_size={patch_size}; "
                f"choose a patch size that divides {image_size} or resize with data.source.image_size"
            )
        self.grid = image_size // patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.register_buffer("positions", grid_positions(self.grid, self.grid), persistent=False)

    def forward(self, batch: Batch) -> Tokens:
        images = batch["inputs"]
        x = self.proj(images).flatten(2).transpose(1, 2)  # (B, grid*grid, D)
        pad_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return Tokens(x=x, pad_mask=pad_mask, positions=self.positions)
