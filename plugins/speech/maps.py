"""How attention maps show speech: maps on the spectrogram's time axis.

:class:`SpectrogramView` is the speech plugin's :class:`attnlab.explain.AttentionView`
(``callbacks.attention_maps.view`` in ``modality/speech.yaml``). The front-end turns
``S`` samples into frames (``win`` samples every ``hop``, never past the clip's end) and
convolutional subsampling turns frames into tokens: token ``j`` sees frames
``j*stride .. j*stride + field - 1``. :class:`TokenTimes` places each token at the centre
of the audio it sees, so the rollout and the relevance of each token line up with the
spectrogram above them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from attnlab.errors import ConfigError
from attnlab.explain import ExampleAttention
from attnlab.types import Batch
from attnlab_speech.features import Features
from attnlab_speech.subsample import LAYERS, min_frames


@dataclass(frozen=True)
class TokenTimes:
    """Where frames and tokens sit in time, in seconds.

    Attributes:
        win: frame length; hop: frame step (seconds).
        stride: frames between consecutive tokens; field: frames one token sees.
    """

    win: float
    hop: float
    stride: int
    field: int

    def frame_centre(self, frame: float) -> float:
        return frame * self.hop + self.win / 2

    def token_centres(self, tokens: int) -> np.ndarray:
        """Centre time of each token ``(tokens,)``: the middle of its frames."""
        first = np.arange(tokens) * self.stride  # (T,) first frame of each token
        return np.array([self.frame_centre(f + (self.field - 1) / 2) for f in first])

    def frame_extent(self, frames: int) -> tuple[float, float]:
        """``imshow`` x-extent of ``frames`` frame columns, each centred on its frame."""
        return self.frame_centre(0) - self.hop / 2, self.frame_centre(frames - 1) + self.hop / 2

    def token_extent(self, tokens: int) -> tuple[float, float]:
        """``imshow`` extent of ``tokens`` token columns, each ``stride`` frames wide."""
        centres = self.token_centres(tokens)
        half = self.stride * self.hop / 2
        return float(centres[0] - half), float(centres[-1] + half)


class SpectrogramView:
    """Draws the spectrogram, the rollout between tokens and each token's relevance on one time axis.

    Args:
        features: the front-end's feature settings (``frontend.features``); the view uses
            its own copy in eval mode (no SpecAugment) to draw the spectrogram.
        subsampling: the front-end's time reduction (``frontend.subsampling``).
    """

    def __init__(self, features: Features, subsampling: int) -> None:
        if subsampling not in LAYERS:
            raise ConfigError(f"the attention view's subsampling={subsampling} is not one of {sorted(LAYERS)}")
        self.features = features.eval()
        rate = features.sample_rate
        self.times = TokenTimes(
            win=features.win / rate,
            hop=features.hop / rate,
            stride=math.prod(s for _, s in LAYERS[subsampling]),
            field=min_frames(subsampling),
        )

    def labels(self, batch: Batch, index: int) -> list[str] | None:
        """Tokens are named by their time on the spectrogram figure, not on heatmap axes."""
        return None

    @torch.no_grad()
    def spectrogram(self, batch: Batch, index: int) -> torch.Tensor:
        """The example's features ``(F, frames)``, padding cut off."""
        length = batch["lengths"][index : index + 1].cpu()
        wave = batch["inputs"][index : index + 1, : int(length)].cpu()  # (1, S)
        feats, frames = self.features(wave, length)  # (1, frames, F)
        return feats[0, : int(frames[0])].T  # (F, frames)

    def overlay(self, batch: Batch, index: int, attention: ExampleAttention) -> Figure:
        spec = self.spectrogram(batch, index)
        rollout = attention.input_rollout  # (T, T)
        tokens = rollout.shape[0]
        t0, t1 = self.times.token_extent(tokens)
        fig = Figure(figsize=(8.0, 8.0), layout="constrained")
        top, middle, bottom = fig.subplots(3, 1, sharex=True, height_ratios=[1.0, 2.0, 0.8])
        f0, f1 = self.times.frame_extent(spec.shape[1])
        top.imshow(spec.numpy(), origin="lower", aspect="auto", cmap="magma", extent=(f0, f1, 0, spec.shape[0]))
        top.set_ylabel("mel channel")
        top.set_title(f"example {index}: features, rollout and relevance per token", fontsize=10)
        middle.imshow(rollout.numpy(), aspect="auto", cmap="viridis", extent=(t0, t1, t1, t0), interpolation="nearest")
        middle.set_ylabel("query time (s)")
        centres = self.times.token_centres(tokens)
        bottom.bar(centres, attention.relevance.numpy(), width=self.times.stride * self.times.hop, color="tab:orange")
        bottom.set_ylabel("relevance")
        bottom.set_xlabel("key time (s)")
        bottom.set_xlim(min(f0, t0), max(f1, t1))
        return fig
