"""How attention maps show images: attention rollout over the image, patch by patch.

:class:`PatchOverlay` is the vision plugin's :class:`attnlab.explain.AttentionView`
(``callbacks.attention_maps.view`` in ``modality/vision.yaml``). The patch embedding cuts
an image ``(C, H, W)`` into a row-major ``H/p x W/p`` grid, so token ``k`` is the patch at
row ``k // (W/p)``, column ``k % (W/p)``; the rollout relevance of each token is drawn
over the pixels of its patch.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from torch import Tensor

from attnlab.errors import ConfigError
from attnlab.explain import ExampleAttention
from attnlab.types import Batch


def displayable(image: Tensor) -> Tensor:
    """A normalised image ``(C, H, W)`` as ``(H, W)`` or ``(H, W, 3)`` in [0, 1] for ``imshow``."""
    image = image.detach().float().cpu()
    low, high = image.min(), image.max()
    image = (image - low) / (high - low).clamp_min(1e-8)
    return image[0] if image.shape[0] == 1 else image[:3].permute(1, 2, 0)  # (H, W) or (H, W, 3)


def patch_grid(relevance: Tensor, height: int, width: int, patch_size: int) -> Tensor:
    """Per-token values ``(T,)`` as the patch grid ``(H/p, W/p)`` they came from."""
    rows, cols = height // patch_size, width // patch_size
    if rows * cols != relevance.numel():
        raise ValueError(
            f"{relevance.numel()} tokens do not form the {rows}x{cols} patch grid of a {height}x{width} image "
            f"with patch_size={patch_size}"
        )
    return relevance.reshape(rows, cols)  # (H/p, W/p), row-major like the patch embedding


class PatchOverlay:
    """Draws the input image beside the image tinted by attention rollout.

    Args:
        patch_size: the patch embedding's patch side in pixels (``frontend.patch_size``).
        alpha: opacity of the rollout over the image.
    """

    def __init__(self, patch_size: int, alpha: float = 0.6) -> None:
        if patch_size < 1:
            raise ConfigError(f"the attention view's patch_size={patch_size} must be >= 1")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"the attention view's alpha={alpha} must be in [0, 1]")
        self.patch_size = patch_size
        self.alpha = alpha

    def labels(self, batch: Batch, index: int) -> list[str] | None:
        """Patches have no names; the heatmaps number them row-major."""
        return None

    def overlay(self, batch: Batch, index: int, attention: ExampleAttention) -> Figure:
        image = batch["inputs"][index]  # (C, H, W)
        height, width = image.shape[-2:]
        grid = patch_grid(attention.relevance, height, width, self.patch_size)
        shown = displayable(image)
        gray = "gray" if shown.dim() == 2 else None
        fig = Figure(figsize=(8.0, 3.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        left.imshow(shown.numpy(), cmap=gray)
        left.set_title(f"example {index}", fontsize=10)
        right.imshow(shown.numpy(), cmap=gray)
        heat = right.imshow(
            grid.numpy(), cmap="inferno", alpha=self.alpha, extent=(0, width, height, 0), interpolation="nearest"
        )
        right.set_title("attention rollout (share of the prediction)", fontsize=10)
        fig.colorbar(heat, ax=right, shrink=0.8)
        for ax in (left, right):
            ax.set_xticks([])
            ax.set_yticks([])
        return fig
