"""Vision attention view: rollout drawn over the pixels of the patch each token came from."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from attnlab.explain import ExampleAttention
from attnlab_vision import PatchEmbed
from attnlab_vision.maps import PatchOverlay, patch_grid


def patch_ids(rows: int, cols: int, patch: int) -> torch.Tensor:
    """An image ``(1, 1, rows*patch, cols*patch)`` whose patch (r, c) is filled with 100 r + c."""
    ids = (100 * torch.arange(rows)[:, None] + torch.arange(cols)[None, :]).float()  # (rows, cols)
    return ids.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[None, None]


@pytest.mark.parametrize(("rows", "cols"), [(4, 4), (2, 3)])
def test_tokens_go_back_to_the_patch_the_embedding_cut_them_from(rows, cols):
    embed = PatchEmbed(in_channels=1, image_size=8, dim=1, patch_size=4)
    with torch.no_grad():  # each token = the mean of its patch, which names the patch
        embed.proj.weight.fill_(1 / 16)
        embed.proj.bias.zero_()
    image = patch_ids(rows, cols, 4)
    values = embed({"inputs": image}).x[0, :, 0]  # (rows * cols,)
    grid = patch_grid(values, 4 * rows, 4 * cols, patch_size=4)
    torch.testing.assert_close(grid, patch_ids(rows, cols, 1)[0, 0])


def test_a_token_count_that_is_not_the_grid_fails():
    with pytest.raises(ValueError, match="5 tokens do not form the 2x2 patch grid of a 32x32 image"):
        patch_grid(torch.ones(5), 32, 32, patch_size=16)


def test_overlay_draws_the_image_and_the_rollout_on_its_pixels():
    relevance = torch.arange(4.0) / 6  # (T,) for a 2x2 grid
    attention = ExampleAttention(
        weights=torch.full((1, 1, 5, 5), 0.2), rollout=torch.full((5, 5), 0.2), relevance=relevance, has_cls=True
    )
    batch = {"inputs": torch.randn(3, 3, 32, 32), "target": torch.zeros(3)}
    fig = PatchOverlay(patch_size=16).overlay(batch, 1, attention)
    assert isinstance(fig, Figure)
    image_ax, overlay_ax = fig.axes[:2]
    shown, heat = overlay_ax.get_images()
    assert shown.get_array().shape == (32, 32, 3) and 0 <= shown.get_array().min() <= shown.get_array().max() <= 1
    torch.testing.assert_close(torch.as_tensor(heat.get_array()), relevance.reshape(2, 2))
    assert heat.get_extent() == [0, 32, 32, 0]
    assert len(image_ax.get_images()) == 1
    assert PatchOverlay(patch_size=16).labels(batch, 0) is None
