"""The speech front-end: waveforms → features → subsampled tokens, masks exact."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from annotated_types import Ge
from torch import nn

from attnlab.types import Batch, Tokens
from attnlab_speech.features import Features
from attnlab_speech.subsample import ConvSubsampling


class SpeechFrontend(nn.Module):
    """Filterbank features of padded waveforms, then convolutional subsampling.

    A batch is ``inputs`` ``(B, S)`` waveforms and ``lengths`` ``(B,)`` in samples. A token
    is real when every frame under it is real, so ``pad_mask`` is exact through each stride.

    Args:
        features: the feature extractor (config ``frontend.features``).
        dim: token width (``backbone.dim``).
        subsampling: time reduction factor: 1, 2, 4, 6 or 8.
        channels: subsampling convolution channels (default ``dim``).
    """

    def __init__(
        self,
        features: Features,
        dim: Annotated[int, Ge(1)],
        subsampling: Literal[1, 2, 4, 6, 8] = 4,
        channels: Annotated[int, Ge(1)] | None = None,
    ) -> None:
        super().__init__()
        self.features = features
        self.subsample = ConvSubsampling(features.n_mels, dim, subsampling, channels)

    def forward(self, batch: Batch) -> Tokens:
        feats, frames = self.features(batch["inputs"], batch["lengths"])
        x, lengths = self.subsample(feats, frames)
        pad_mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]  # (B, T')
        return Tokens(x=x, pad_mask=pad_mask)
