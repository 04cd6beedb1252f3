"""Speech attention view: tokens placed in time where the subsampling took them from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.errors import ConfigError
from attnlab.explain import ExampleAttention
from attnlab_speech import Features
from attnlab_speech.audio import collate_audio
from attnlab_speech.maps import SpectrogramView
from attnlab_speech.subsample import LAYERS, ConvSubsampling

RATE = 16000


def frames_seen(factor: int, frames: int = 48) -> list[set[int]]:
    """For each output token, the input frames that change it (found by perturbing each frame)."""
    torch.manual_seed(0)
    sub = ConvSubsampling(n_features=20, dim=8, factor=factor, channels=8)
    feats = torch.randn(1, frames, 20)
    lengths = torch.tensor([frames])
    with torch.no_grad():
        base, _ = sub(feats, lengths)
        seen: list[set[int]] = [set() for _ in range(base.shape[1])]
        for f in range(frames):
            moved = feats.clone()
            moved[0, f] += 5 * torch.randn(20)
            out, _ = sub(moved, lengths)
            for j in torch.nonzero((out - base).abs().amax(-1)[0] > 1e-6).flatten().tolist():
                seen[j].add(f)
    return seen


@pytest.mark.parametrize("factor", sorted(LAYERS))
def test_each_token_is_placed_at_the_middle_of_the_frames_it_sees(factor):
    features = Features(RATE, n_mels=20)
    times = SpectrogramView(features, subsampling=factor).times
    seen = frames_seen(factor)
    centres = times.token_centres(len(seen))
    for j, frames in enumerate(seen):
        assert frames == set(range(min(frames), max(frames) + 1))  # a contiguous span
        assert len(frames) == times.field and min(frames) == j * times.stride
        middle = (min(frames) + max(frames)) / 2 * 0.010 + 0.025 / 2  # frame centre, 10 ms hop, 25 ms window
        assert centres[j] == pytest.approx(middle)


def test_an_unknown_subsampling_fails_in_one_line():
    with pytest.raises(ConfigError, match="subsampling=3 is not one of"):
        SpectrogramView(Features(RATE), subsampling=3)


def test_overlay_lines_up_the_spectrogram_rollout_and_relevance():
    torch.manual_seed(0)
    features = Features(RATE, n_mels=20, freq_mask=5, time_mask=5, masks=2)
    view = SpectrogramView(features, subsampling=4)
    clips = [0.3 * torch.randn(8000), 0.3 * torch.randn(5000)]
    batch = collate_audio([{"inputs": c, "target": 0} for c in clips], RATE)
    expected, frames = features.eval()(clips[1][None], torch.tensor([5000]))  # (1, frames, 20)
    tokens = (int(frames[0]) - 3) // 2 + 1
    tokens = (tokens - 3) // 2 + 1
    relevance = torch.full((tokens,), 1 / tokens)
    attention = ExampleAttention(
        weights=torch.zeros(1, 1, tokens, tokens),
        rollout=torch.eye(tokens),
        relevance=relevance,
        has_cls=False,
    )
    fig = view.overlay(batch, 1, attention)
    spec_ax, rollout_ax, relevance_ax = fig.axes
    (spec,) = spec_ax.get_images()
    np.testing.assert_allclose(spec.get_array(), expected[0].T.numpy(), atol=1e-5)  # no SpecAugment
    (maps,) = rollout_ax.get_images()
    left, right, bottom, top = maps.get_extent()
    assert (left, right) == pytest.approx(view.times.token_extent(tokens)) and (top, bottom) == (left, right)
    centres = [p.get_x() + p.get_width() / 2 for p in relevance_ax.patches]
    assert centres == pytest.approx(list(view.times.token_centres(tokens)))
    assert spec.get_extent()[0] <= left and right <= spec.get_extent()[1] + view.times.hop
