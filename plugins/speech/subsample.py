"""Convolutional subsampling of feature frames to backbone tokens (ESPnet/WeNet style).

Factor 4 is two 3x3 stride-2 convolutions over (time, frequency), as in
``Conv2dSubsampling4``; 6 is a 3x3 stride 2 then a 5x5 stride 3; 8 is three 3x3 stride 2;
2 is one; 1 is a linear projection. Convolutions are unpadded, so an output frame is real
exactly when its whole receptive field is: lengths follow ``(L - k) // s + 1`` per layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from attnlab.errors import ConfigError

LAYERS: dict[int, tuple[tuple[int, int], ...]] = {
    1: (),
    2: ((3, 2),),
    4: ((3, 2), (3, 2)),
    6: ((3, 2), (5, 3)),
    8: ((3, 2), (3, 2), (3, 2)),
}
"""(kernel, stride) of each convolution, per subsampling factor."""


def out_length(length: Tensor | int, layers: tuple[tuple[int, int], ...]) -> Tensor | int:
    for k, s in layers:
        length = (length - k) // s + 1
    return length


def min_frames(factor: int) -> int:
    """Fewest input frames that give one output frame."""
    need = 1
    for k, s in reversed(LAYERS[factor]):
        need = (need - 1) * s + k
    return need


class ConvSubsampling(nn.Module):
    """``(B, T, F)`` features → ``(B, T', dim)`` tokens and their lengths, ``T' ≈ T / factor``.

    Args:
        n_features: feature channels ``F``.
        dim: output width (``backbone.dim``).
        factor: 1, 2, 4, 6 or 8.
        channels: convolution channels (default ``dim``).
    """

    def __init__(self, n_features: int, dim: int, factor: int = 4, channels: int | None = None) -> None:
        super().__init__()
        if factor not in LAYERS:
            raise ConfigError(f"frontend.subsampling={factor} is not supported; choose one of {sorted(LAYERS)}")
        self.factor, self.layers = factor, LAYERS[factor]
        channels = channels or dim
        convs: list[nn.Module] = []
        c_in = 1
        for k, s in self.layers:
            convs += [nn.Conv2d(c_in, channels, kernel_size=k, stride=s), nn.ReLU()]
            c_in = channels
        self.conv = nn.Sequential(*convs)
        freq = int(out_length(n_features, self.layers))
        if freq < 1:
            raise ConfigError(f"{n_features} feature channels are too few for subsampling {factor}; raise n_mels")
        self.proj = nn.Linear(c_in * freq, dim)

    def forward(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        need = min_frames(self.factor)
        if feats.shape[1] < need:
            feats = nn.functional.pad(feats, (0, 0, 0, need - feats.shape[1]))
        x = self.conv(feats.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = self.proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f))  # (B, T', dim)
        return x, torch.as_tensor(out_length(lengths, self.layers)).clamp(1, t)
